"""Delete the topics earlier test and benchmark runs left on the local broker: `python -m tests.cleanup`.

Every Kafka client reads the broker's metadata, whose size grows with its topics; a broker that kept
thousands of topics from earlier runs makes every test slower. ./scripts/test.sh runs this first.
"""

from __future__ import annotations

import asyncio
import re
import sys

from booster.config import Settings
from booster.ops import admin
from tests.conftest import TEST_PREFIX

BENCH_PREFIX = re.compile(r"^bench-[0-9a-f]{8}\.")


def main() -> int:
    deleted = asyncio.run(
        admin.delete_topics(Settings.from_env(), lambda t: bool(TEST_PREFIX.match(t) or BENCH_PREFIX.match(t)))
    )
    print(f"cleanup: deleted {len(deleted)} topic(s) left by earlier test and benchmark runs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
