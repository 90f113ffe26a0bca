"""Shared fixtures: the real local broker for the session, fresh topics per test.

Every test that takes the `kafka` fixture is marked `broker`, so `pytest -m "not broker"` runs the
pure tests alone. Test files run in parallel (pytest-xdist, one file per process): every test has its
own topic prefix, so none sees another's records.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import uuid
from collections.abc import Iterator

import pytest

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.ops import admin

# The order pytest-xdist hands files out in (with --no-loadscope-reorder): the minute-long files first,
# one per process. xdist also queues a second file on a process that has two tests or fewer left, so
# the three one-test files get a quick many-test unit file behind them (not another minute-long one),
# and the rest go to whichever process frees up first.
SCHEDULE = [
    "integration/test_bench_smoke.py",
    "faults/test_uplift.py",
    "faults/test_kill9.py",
    "faults/test_restart.py",
    "faults/test_standby.py",
    "faults/test_lag.py",
    "faults/test_broker_outage.py",
    "integration/test_engine.py",
    "integration/test_security.py",
    "integration/test_registry.py",
    "unit/schemas/test_codec.py",
    "unit/processors/test_recipients.py",
    "unit/processors/test_boosters.py",
    "faults/test_rebalance.py",
    "faults/test_broker_outage_launches.py",
    "integration/test_upstream_clients.py",
    "integration/test_operations_doc.py",
    "integration/test_operators.py",
    "integration/test_broker.py",
    "faults/test_bad_input.py",
    "integration/test_delivery_status.py",
    "integration/test_launch_decisions.py",
    "integration/test_fanout_progress.py",
    "integration/test_notices.py",
    "integration/test_one_decision.py",
]


def _rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::")[0]
    return next((i for i, name in enumerate(SCHEDULE) if path.endswith(name)), len(SCHEDULE))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = config.getoption("markexpr", "") or ""
    for item in items:
        if "kafka" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)
        for opt_in in ("soak", "cluster"):  # long or heavy: run only when asked for
            if item.get_closest_marker(opt_in) and opt_in not in selected:
                item.add_marker(pytest.mark.skip(reason=f"opt-in: select it with -m {opt_in}"))
    items.sort(key=_rank)  # stable: the order within a file stays


@pytest.fixture(scope="session")
def kafka() -> Iterator[LocalKafka]:
    """The project's local Kafka; started here unless already running (then left running).

    Parallel test processes each run this fixture: a lock lets one of them start the broker, and the
    others find it running."""
    broker = LocalKafka(Settings.from_env())
    broker.root.mkdir(parents=True, exist_ok=True)
    with open(broker.root / "test-start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = broker.start(say=print)
        fcntl.flock(lock, fcntl.LOCK_UN)
    yield broker
    if started:
        broker.stop(say=print)


TEST_PREFIX = re.compile(r"^t[0-9a-f]{10}\.")  # every topic of a test starts so, changelogs included
_prefixes: list[str] = []  # made by this process, deleted when their module is done


def fresh_settings(partitions: int = 4, **env: str) -> Settings:
    """Settings with a topic prefix no other test uses, so tests never see each other's records."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    _prefixes.append(prefix)
    values = {
        **os.environ,
        "BOOSTER_TOPIC_PREFIX": prefix,
        "BOOSTER_PARTITIONS": str(partitions),
        "BOOSTER_ALLOWED_LATENESS_SECONDS": "2",
        "BOOSTER_TICK_INTERVAL_SECONDS": "0.5",
        **env,
    }
    return Settings.from_env(values)


@pytest.fixture(scope="module", autouse=True)
def delete_the_modules_topics() -> Iterator[None]:
    """Every client reads the broker's metadata, which grows with its topics: a module's topics go
    when it is done (after its workers have stopped: autouse fixtures are torn down last)."""
    first = len(_prefixes)
    yield
    mine = tuple(_prefixes[first:])
    if mine:
        asyncio.run(admin.delete_topics(Settings.from_env(), lambda name: name.startswith(mine)))


@pytest.fixture
def settings(kafka: LocalKafka) -> Settings:
    s = fresh_settings()
    asyncio.run(admin.create(s))
    return s
