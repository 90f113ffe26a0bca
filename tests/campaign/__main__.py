"""python -m tests.campaign --minutes M --seed S: a fault campaign on its own local broker."""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.testing.workers import free_ports
from tests.campaign import __doc__ as about
from tests.campaign.plan import BROKER_FAULTS, CLUSTER_FAULTS, WORKER_FAULTS, Timing, describe, make_plan
from tests.campaign.run import run_campaign, say

# the allowed lateness: facts published after a deadline come in its first quarter, so a broker
# outage of up to 45 s (down, started again, the producers back) that delays them leaves them counted
LATENESS = 60.0


def campaign_settings(broker: str, lateness: float, session_timeout: float, **env: str) -> Settings:
    from tests.conftest import fresh_settings

    return fresh_settings(
        4,
        BOOSTER_BROKER=broker,
        BOOSTER_ALLOWED_LATENESS_SECONDS=str(lateness),
        BOOSTER_SESSION_TIMEOUT_SECONDS=str(session_timeout),
        BOOSTER_FANOUT_CHUNK="200",
        BOOSTER_RETRY_SECONDS="30",
        BOOSTER_OVERDUE_SECONDS="120",  # the campaign is minutes long: an overdue booster shows within it
        **env,
    )


def own_broker(home: Path, nodes: int) -> LocalKafka:
    """A broker of its own (the faults restart it), on the jars of the default one."""
    shared = LocalKafka(Settings.from_env())
    shared.fetch(say=lambda m: say(m))
    port = free_ports(2 * nodes)
    (home / "kafka").mkdir(parents=True)
    (home / "kafka" / "libs").symlink_to(shared.libs.parent)
    env = {"BOOSTER_HOME": str(home), "BOOSTER_KAFKA_PORT": str(port), "BOOSTER_BROKER": f"127.0.0.1:{port}"}
    return LocalKafka(Settings.from_env(env), nodes=nodes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=about, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="how long boosters come due and faults strike")
    parser.add_argument("--seed", type=int, default=None, help="the plan's seed (default: a random one, printed)")
    parser.add_argument("--faults-per-minute", type=float, default=5.0)
    parser.add_argument("--boosters-per-minute", type=float, default=3.0)
    parser.add_argument("--recipients", type=int, nargs=2, default=(150, 900), metavar=("MIN", "MAX"))
    parser.add_argument("--workers", type=int, default=2, help="workers at the start (at most one more joins)")
    parser.add_argument("--cluster", action="store_true", help="a three-node cluster; leaders are killed too")
    parser.add_argument("--no-broker-faults", action="store_true")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    kinds = WORKER_FAULTS + (() if args.no_broker_faults else BROKER_FAULTS)
    kinds += CLUSTER_FAULTS if args.cluster else ()
    lateness, session_timeout = LATENESS, 10.0
    timing = Timing(seconds=args.minutes * 60, lateness=lateness)
    tmp = tempfile.mkdtemp(prefix="campaign-")  # the workers' logs stay there; the broker's data goes
    kafka = own_broker(Path(tmp) / "home", 3 if args.cluster else 1)
    kafka.start(say=lambda m: say(m))
    try:
        env = {"BOOSTER_REPLICATION_FACTOR": "3"} if args.cluster else {}
        settings = campaign_settings(kafka.bootstrap, lateness, session_timeout, **env)
        start = time.monotonic()
        plan = make_plan(
            seed,
            int(time.time() * 1000),
            timing,
            boosters_per_minute=args.boosters_per_minute,
            recipients=tuple(args.recipients),
            faults_per_minute=args.faults_per_minute,
            fault_kinds=kinds,
        )
        say(describe(plan))
        outcome = run_campaign(
            plan,
            settings,
            kafka,
            Path(tmp) / "workers",
            workers=args.workers,
            max_workers=args.workers + 1,
            session_timeout=session_timeout,
            drain_seconds=300,  # without a booster finishing
            drain_cap_seconds=1800,
            start=start,
        )
    finally:
        kafka.stop(say=lambda m: say(m))
    if not outcome.violations:  # else its data stays, to read the topics again (booster kafka start there)
        shutil.rmtree(Path(tmp) / "home", ignore_errors=True)
    print(outcome.to_json())
    say(f"seed {seed}: {len(outcome.violations)} violation(s)")
    return 1 if outcome.violations else 0


if __name__ == "__main__":
    sys.exit(main())
