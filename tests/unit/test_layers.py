"""The import rule of the layers, read from the source: the core stays pure, the contract stays below
the shell, and only the compatibility module touches the libraries' internals."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "booster"
STREAM_LIBRARIES = {"faust", "aiokafka", "mode", "rocksdict", "kafka", "confluent_kafka"}


def imports_of(source: str) -> set[str]:
    """Every module a source file imports, absolute (relative imports are not used in this project)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            assert node.module is not None
            found.add(node.module)
    return found


def modules(layer: str) -> dict[str, set[str]]:
    return {str(p.relative_to(PACKAGE)): imports_of(p.read_text()) for p in sorted((PACKAGE / layer).rglob("*.py"))}


def top(name: str) -> str:
    return name.split(".")[0]


def processors_violations(found: dict[str, set[str]]) -> list[str]:
    """processors imports only the standard library, itself and the root exception's module (a record
    whose values make no sense is refused with the same DecodeError as one whose bytes do not)."""
    return [
        f"{path} imports {name}"
        for path, names in found.items()
        for name in sorted(names)
        if not (name in ("booster.processors", "booster.errors") or name.startswith("booster.processors."))
        and top(name) not in sys.stdlib_module_names
        and name != "__future__"
    ]


def schemas_violations(found: dict[str, set[str]]) -> list[str]:
    """schemas does not import the shell, nor Faust or Kafka clients."""
    return [
        f"{path} imports {name}"
        for path, names in found.items()
        for name in sorted(names)
        if name.startswith(("booster.streams", "booster.ops", "booster.testing")) or top(name) in STREAM_LIBRARIES
    ]


def test_processors_import_only_the_standard_library_and_themselves() -> None:
    found = modules("processors")
    assert len(found) >= 8
    assert processors_violations(found) == []


def test_schemas_import_neither_the_shell_nor_stream_libraries() -> None:
    found = modules("schemas")
    assert len(found) >= 3
    assert schemas_violations(found) == []


def test_the_engine_does_not_import_the_tooling_or_the_test_helpers() -> None:
    engine = {**modules("processors"), **modules("schemas"), **modules("streams")}
    bad = [
        f"{p} imports {n}" for p, ns in engine.items() for n in ns if n.startswith(("booster.ops", "booster.testing"))
    ]
    assert bad == []


def test_private_attributes_of_the_libraries_only_in_the_compatibility_module() -> None:
    """`x._private` on anything but self/cls/our own objects is only allowed in streams/compat.py."""
    ours = {"self", "cls"}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ours)
                # os._exit is the standard library's documented exit without cleanup, not a private API
                and not (isinstance(node.value, ast.Name) and (node.value.id, node.attr) == ("os", "_exit"))
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .{node.attr}")
    assert offenders == []


@pytest.mark.parametrize(
    ("source", "rule", "caught"),
    [
        ("import faust\n", processors_violations, True),
        ("from booster.schemas import codec\n", processors_violations, True),
        (
            "from collections.abc import Mapping\nfrom booster.processors.events import Channel\n",
            processors_violations,
            False,
        ),
        ("from booster.streams.app import BoosterApp\n", schemas_violations, True),
        ("from aiokafka import TopicPartition\n", schemas_violations, True),
        ("from booster.errors import DecodeError\n", schemas_violations, False),
    ],
)
def test_the_rules_catch_a_violation(source: str, rule: object, caught: bool) -> None:
    check = rule  # the rule functions take {path: imports}
    assert callable(check)
    assert bool(check({"x.py": imports_of(source)})) is caught
