// node validate.mjs <asyncapi.yaml>: parse and validate an AsyncAPI document with the official parser,
// then check every Avro payload (each referenced .avsc) with the Avro schema parser's own validation
// (the parser's 3.0 rules do not call it). Prints every diagnostic as one JSON line; exits 1 when one
// is an error, or when the document cannot be parsed.
import { Parser, fromFile } from "@asyncapi/parser";
import { AvroSchemaParser } from "@asyncapi/avro-schema-parser";

const path = process.argv[2];
if (!path) {
  console.error("usage: node validate.mjs <asyncapi.yaml>");
  process.exit(2);
}
const ERROR = 0;
const avro = AvroSchemaParser();
const parser = new Parser();
parser.registerSchemaParser(avro);
const { document, diagnostics } = await fromFile(parser, path).parse();
const found = diagnostics.map((d) => ({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
let avroChecked = 0;
if (document) {
  for (const message of document.allMessages()) {
    const payload = message.json().payload ?? {};
    if (!avro.getMimeTypes().includes(payload.schemaFormat)) {
      continue;
    }
    const where = ["components", "messages", message.id(), "payload", "schema"];
    const schema = payload["x-parser-original-payload"] ?? payload.schema;
    for (const problem of await avro.validate({ data: schema, path: where })) {
      found.push({ severity: ERROR, code: "avro-schema", message: problem.message, path: where });
    }
    avroChecked += 1;
  }
}
for (const d of found) {
  console.log(JSON.stringify(d));
}
if (!document || found.some((d) => d.severity === ERROR)) {
  process.exit(1);
}
console.log(JSON.stringify({ ok: true, version: document.version(), channels: document.channels().length,
  messages: document.allMessages().length, operations: document.operations().length, avroChecked }));
