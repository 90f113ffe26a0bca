"""A Confluent-compatible schema registry, the parts Booster speaks: a writer schema by its id, a
subject's schema registered (or found), a subject's compatibility level.

Confluent Schema Registry, Karapace and Apicurio's /apis/ccompat/v7 answer the same API. Plain
urllib: a handful of GET/POST/PUT calls, each made once per schema and cached by the codec, need no
HTTP client library.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from booster.config import RegistryAccess, Settings
from booster.errors import RegistryError, RegistryUnavailable
from booster.schemas.catalog import CATALOG
from booster.schemas.codec import codec

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
# a registry that takes longer than this is as good as away: the worker retries, with backoff
TIMEOUT_SECONDS = 5.0
NOT_FOUND = (40401, 40402, 40403)  # subject, version, schema not found


class RegistryClient:
    def __init__(self, access: RegistryAccess, timeout: float = TIMEOUT_SECONDS) -> None:
        if not access.enabled:
            raise RegistryError("no schema registry is set; set BOOSTER_SCHEMA_REGISTRY_URL")
        self.access = access
        self.timeout = timeout

    def schema(self, schema_id: int) -> str | None:
        """The schema (Avro JSON text) the registry gave `schema_id`; None when it has no such id."""
        found = self._call("GET", f"/schemas/ids/{schema_id}", missing_ok=True)
        if found is None:
            return None
        kind = found.get("schemaType", "AVRO")
        if kind != "AVRO":
            raise RegistryError(f"schema id {schema_id} is a {kind} schema, not Avro")
        return str(found["schema"])

    def register(self, subject: str, schema: str) -> int:
        """The id of `schema` under `subject`: registered as its next version if it is new there (the
        registry refuses a schema its compatibility level forbids), found if it was registered before."""
        found = self._call("POST", f"/subjects/{_quote(subject)}/versions", {"schema": schema})
        assert found is not None
        return int(found["id"])

    def lookup(self, subject: str, schema: str) -> int | None:
        """The id of `schema` if it is registered under `subject`, else None (nothing is registered)."""
        found = self._call("POST", f"/subjects/{_quote(subject)}", {"schema": schema}, missing_ok=True)
        return None if found is None else int(found["id"])

    def set_compatibility(self, subject: str, level: str) -> None:
        self._call("PUT", f"/config/{_quote(subject)}", {"compatibility": level})

    def compatibility(self, subject: str) -> str | None:
        """The subject's own compatibility level; None when it has none (the registry's default applies)."""
        found = self._call("GET", f"/config/{_quote(subject)}", missing_ok=True)
        if found is None:
            return None
        level = found.get("compatibilityLevel") or found.get("compatibility")
        return None if level is None else str(level)

    def subjects(self) -> list[str]:
        found = self._call("GET", "/subjects")
        return [str(s) for s in (found or [])]

    def _call(self, method: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
        url = self.access.url + path
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", CONTENT_TYPE)
        if data is not None:
            request.add_header("Content-Type", CONTENT_TYPE)
        if self.access.token:
            request.add_header("Authorization", f"Bearer {self.access.token}")
        elif self.access.username:
            pair = f"{self.access.username}:{self.access.password}".encode()
            request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = _error_of(exc)
            if missing_ok and (exc.code == 404 or detail.get("error_code") in NOT_FOUND):
                return None
            message = detail.get("message") or exc.reason
            if exc.code in (401, 403):  # credentials revoked or rotated: no record's fault, wait and retry
                raise RegistryUnavailable(
                    f"the schema registry refused {method} {path} ({exc.code}: {message}); check "
                    "BOOSTER_SCHEMA_REGISTRY_USERNAME/_PASSWORD or _TOKEN"
                ) from None
            if exc.code == 409:
                raise RegistryError(
                    f"the schema registry refused {method} {path}: the schema is incompatible with the subject's "
                    f"versions under its compatibility level ({message})"
                ) from None
            if exc.code >= 500 or exc.code == 429:  # the registry's own trouble: it may pass
                raise RegistryUnavailable(
                    f"the schema registry answered {exc.code} to {method} {path}: {message}"
                ) from None
            raise RegistryError(f"the schema registry refused {method} {path} ({exc.code}: {message})") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryUnavailable(
                f"the schema registry at {self.access.url} did not answer ({reason}); check that it is up and "
                "BOOSTER_SCHEMA_REGISTRY_URL"
            ) from None


def _quote(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")


def _error_of(exc: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        found = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        return {}
    return found if isinstance(found, dict) else {}


# What the registry enforces on each subject of the contract, when `booster topics create` registers it.
# Inputs: upstream teams register their writers' versions, and Booster reads every one with its own
# (older or newer) schema; a version Booster's schema cannot read is exactly what must be refused, in
# both directions and against every version, so FULL_TRANSITIVE (BACKWARD alone lets a writer drop a
# field Booster needs). Outputs: Booster is the only writer, and consumers read with whatever version
# they were built with, so each new version of ours must be readable by all earlier ones:
# FORWARD_TRANSITIVE (Booster reads its own outputs back only with the newest schema, which the
# contract's own evolution tests cover).
INPUT_COMPATIBILITY = "FULL_TRANSITIVE"
OUTPUT_COMPATIBILITY = "FORWARD_TRANSITIVE"


def contract_subjects(settings: Settings) -> dict[str, str]:
    """Every contract topic others read or write, and its subject (the topic-name strategy:
    `<topic>-value`, the configured prefix included). Internal topics are not in the registry."""
    return {topic: f"{settings.topic(topic)}-value" for topic, spec in CATALOG.items() if spec.role != "internal"}


def compatibility_of(topic: str) -> str:
    return INPUT_COMPATIBILITY if CATALOG[topic].role == "input" else OUTPUT_COMPATIBILITY


def register_contract(settings: Settings, client: RegistryClient, set_compatibility: bool = False) -> dict[str, int]:
    """Our latest schema of every contract topic registered under its subject (found, when it was
    registered before); the registry's ids, by topic. `set_compatibility`: each subject gets its level."""
    ids = {}
    for topic, subject in contract_subjects(settings).items():
        ids[topic] = client.register(subject, json.dumps(codec().raw_schemas[topic]))
        if set_compatibility:
            client.set_compatibility(subject, compatibility_of(topic))
    return ids


class ContractRegistry:
    """The registry as the codec uses it: writer schemas by id, and the ids of the contract's schemas,
    looked up (a read: workers and operators need no right to register; `booster topics create` does)."""

    def __init__(self, settings: Settings, client: RegistryClient) -> None:
        self.settings = settings
        self.client = client

    def schema(self, schema_id: int) -> str | None:
        return self.client.schema(schema_id)

    def id_of(self, topic: str) -> int:
        subject = f"{self.settings.topic(topic)}-value"
        found = self.client.lookup(subject, json.dumps(codec().raw_schemas[topic]))
        if found is None:
            raise RegistryError(
                f"Booster's schema of {topic} is not registered under {subject} at {self.settings.registry.url}; "
                "run `booster topics create` with BOOSTER_SCHEMA_REGISTRY_URL set"
            )
        return found


def use_registry(
    settings: Settings, *, register: bool = False, set_compatibility: bool = False, every_topic: bool = False
) -> dict[str, int]:
    """Point this process's codec at the schema registry, when BOOSTER_SCHEMA_REGISTRY_URL is set: the
    contract's topics read and written with the registry's ids. `register`: our schemas registered
    first (with `set_compatibility`, each subject's level); `every_topic`: their ids looked up now, not
    when a topic is first written (a worker: it fails at start, not half-way). The ids known, by topic.
    RegistryUnavailable when it does not answer (a worker waits for it as for the broker)."""
    if not settings.registry.enabled:
        return {}
    client = RegistryClient(settings.registry)
    source = ContractRegistry(settings, client)
    ids: dict[str, int] = {}
    if register:
        ids = register_contract(settings, client, set_compatibility)
    elif every_topic:
        ids = {topic: source.id_of(topic) for topic in contract_subjects(settings)}
    codec().use_registry(source, ids)
    return ids
