"""The topics of the contract: schema file, stable schema id, key field and shape.

Schema ids are part of the wire format (bytes 1-4 of every value). They never change and are never
reused: a new schema version gets a new id. Writers use a topic's latest version; readers decode every
version of it into the latest one's shape (Avro schema resolution: a field added with a default).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from booster.errors import BoosterError

AVRO_DIR = Path(__file__).parent / "avro"


@dataclass(frozen=True)
class TopicSpec:
    name: str  # contract name, without the configured prefix
    schema_id: int
    key_field: str | None  # the value field the key is taken from; None: the key is not one field
    contact_keyed: bool  # co-partitioned by contact_id
    compacted: bool
    role: str  # "input", "output" or "internal"
    version: int = 1  # file `<name>.avsc` for version 1, `<name>.v<N>.avsc` after that
    expires: bool = False  # compacted, and deleted after BOOSTER_AUDIENCE_RETENTION_DAYS as well

    @property
    def schema_path(self) -> Path:
        suffix = "" if self.version == 1 else f".v{self.version}"
        return AVRO_DIR / f"{self.name}{suffix}.avsc"


_SPECS = [
    TopicSpec("campaign.launched", 1, "campaign_id", False, False, "input"),
    TopicSpec("campaign.booster-cancelled", 2, "campaign_id", False, False, "input"),
    TopicSpec("account.channels", 3, "account_id", False, True, "input"),
    TopicSpec("message.sent", 4, "contact_id", True, False, "input"),
    TopicSpec("message.delivered", 5, "contact_id", True, False, "input"),
    TopicSpec("message.opened", 6, "contact_id", True, False, "input"),
    TopicSpec("message.clicked", 7, "contact_id", True, False, "input"),
    TopicSpec("contact.unsubscribed", 8, "contact_id", True, False, "input"),
    TopicSpec("contact.deleted", 9, "contact_id", True, False, "input"),
    TopicSpec("contact.blocked", 10, "contact_id", True, False, "input"),
    TopicSpec("booster.commands", 11, "contact_id", True, False, "output"),
    TopicSpec("booster.reports", 12, "campaign_id", False, True, "output"),
    TopicSpec("booster.dead-letter", 13, None, False, False, "output"),
    TopicSpec("booster.control", 14, "campaign_id", True, False, "internal"),
    TopicSpec("booster.summaries", 15, "campaign_id", False, False, "internal"),
    TopicSpec("booster.fanout-progress", 16, "campaign_id", True, True, "internal"),
    # v2: every REJECTED and CANCELLED report carries a machine-readable reason code (R14)
    TopicSpec("booster.reports", 17, "campaign_id", False, True, "output", version=2),
    TopicSpec("booster.notices", 18, "account_id", False, False, "output"),
    # v2: DECIDED, a booster's one fire-or-cancel decision (R13), and COUNTED, the open counts it needs (R7)
    TopicSpec("booster.control", 19, "campaign_id", True, False, "internal", version=2),
    # v2: why the decision called the booster off
    TopicSpec("booster.summaries", 20, "campaign_id", False, False, "internal", version=2),
    # R16: each recipient's outcome in a fired booster; keyed `<booster_id>/<contact_id>`
    TopicSpec("booster.audience", 21, None, True, True, "output", expires=True),
    # v3: CHANNEL names the account whose access changed (G5: only the winning launch's account counts)
    TopicSpec("booster.control", 22, "campaign_id", True, False, "internal", version=3),
    # v2: the booster's machine-open policy (count_machine_opens, default false: a machine open is not an open)
    TopicSpec("campaign.launched", 23, "campaign_id", False, False, "input", version=2),
    # v4: the schedule carries that policy to every partition
    TopicSpec("booster.control", 24, "campaign_id", True, False, "internal", version=4),
    # v2, v3, v3: the audience boosted despite a machine open, counted through the fan-out to the report
    TopicSpec("booster.fanout-progress", 25, "campaign_id", True, True, "internal", version=2),
    TopicSpec("booster.summaries", 26, "campaign_id", False, False, "internal", version=3),
    TopicSpec("booster.reports", 27, "campaign_id", False, True, "output", version=3),
    # v2: bot, a click the sender knows a link scanner made (it never excludes)
    TopicSpec("message.clicked", 28, "contact_id", True, False, "input", version=2),
    # v3, v4, v4: `marks` counts the audience boosted despite a machine open or a link scanner's click
    TopicSpec("booster.fanout-progress", 29, "campaign_id", True, True, "internal", version=3),
    TopicSpec("booster.summaries", 30, "campaign_id", False, False, "internal", version=4),
    TopicSpec("booster.reports", 31, "campaign_id", False, True, "output", version=4),
    # v2: reason code SETTING_OUT_OF_RANGE (a booster setting other than its delay is out of range)
    TopicSpec("booster.notices", 32, "account_id", False, False, "output", version=2),
    # v3: booster.scanner_window_seconds, clicks that soon after delivery are a link scanner's
    TopicSpec("campaign.launched", 33, "campaign_id", False, False, "input", version=3),
    # v5: the schedule carries the scanner window and the original campaign's channel
    TopicSpec("booster.control", 34, "campaign_id", True, False, "internal", version=5),
    # whether a contact can be reached on a channel (latest wins): boosters on another channel than
    # their campaign's exclude the unreachable (UNREACHABLE)
    TopicSpec("contact.reachability", 35, "contact_id", True, False, "input"),
    # v2: the outcome UNREACHABLE, and OTHER for outcomes newer than a reader
    TopicSpec("booster.audience", 36, None, True, True, "output", version=2, expires=True),
    # v2: the account's quiet hours per channel, and its time zone for contacts without their own
    TopicSpec("account.channels", 37, "account_id", False, True, "input", version=2),
    # a contact's time zone (latest wins): the local time the quiet hours are judged in
    TopicSpec("contact.time-zone", 38, "contact_id", True, False, "input"),
    # v2: send_after, the end of the quiet hours a command issued inside them waits for
    TopicSpec("booster.commands", 39, "contact_id", True, False, "output", version=2),
    # v3: the account's frequency cap, the most boosters per contact in a rolling window
    TopicSpec("account.channels", 40, "account_id", False, True, "input", version=3),
    # v3: the outcome FREQUENCY_CAP, and frequency_capped, whether the booster counts toward the cap
    TopicSpec("booster.audience", 41, None, True, True, "output", version=3, expires=True),
    # v6, v5: the schedule carries the account's frequency cap when the launch was decided
    TopicSpec("booster.control", 42, "campaign_id", True, False, "internal", version=6),
    TopicSpec("booster.summaries", 43, "campaign_id", False, False, "internal", version=5),
    # v4: booster.holdout_percent and booster.measurement_hours, the uplift measurement's settings
    TopicSpec("campaign.launched", 44, "campaign_id", False, False, "input", version=4),
    # v7, v6: the schedule carries them
    TopicSpec("booster.control", 45, "campaign_id", True, False, "internal", version=7),
    TopicSpec("booster.summaries", 46, "campaign_id", False, False, "internal", version=6),
    # v4: the outcome HOLDOUT, an eligible recipient held out as the measurement's control group
    TopicSpec("booster.audience", 47, None, True, True, "output", version=4, expires=True),
    # v4: outcomes_from, where the booster's outcomes start in the partition, for its measurement
    TopicSpec("booster.fanout-progress", 48, "campaign_id", True, True, "internal", version=4),
    # each partition's share of a booster's uplift measurement, merged into booster.results
    TopicSpec("booster.measurements", 49, "campaign_id", False, False, "internal"),
    TopicSpec("booster.results", 50, "campaign_id", False, True, "output"),
    # v5, v3: the reason code ENGINE_LATE, a launch the workers reached too long after its deadline
    TopicSpec("booster.reports", 51, "campaign_id", False, True, "output", version=5),
    TopicSpec("booster.notices", 52, "account_id", False, False, "output", version=3),
]

# every schema version ever written, by id; and each topic's latest version, which writers use
BY_ID: dict[int, TopicSpec] = {spec.schema_id: spec for spec in _SPECS}
CATALOG: dict[str, TopicSpec] = {spec.name: spec for spec in sorted(_SPECS, key=lambda s: s.version)}

# Launches re-keyed by account so they meet account.channels in one partition; same schema.
LAUNCHES_BY_ACCOUNT = "booster.launches-by-account"

# Contact-keyed facts found in another partition than their contact's (a producer with another
# partitioner, such as librdkafka's default CRC32), forwarded to the contact's partition as they came:
# the value's schema id says which input topic each one is from.
REROUTED = "booster.rerouted"

# The worker's tables. Each has a compacted changelog topic, `<group id>-<table>-changelog`, which must
# exist before a worker joins the group: Faust's assignor silently leaves out a topic its metadata does
# not list, and a table left out is never restored on the worker that takes its partitions over.
STATE_TABLES = (
    "recipients",
    "contacts",
    "campaigns",
    "summaries",
    "accounts",
    "pending-launches",
    "launch-decisions",
    "account-boosters",
    # per contact, the boosters sent to it that count toward its account's frequency cap, and the
    # offset of booster.audience up to which they are read (`streams/history.py`)
    "sent-history",
    # per booster and contact, the first engagement in the booster's measurement window; and
    # the partitions' measurements of a booster received so far (`streams/uplift.py`)
    "engagement",
    "measurements",
)


def audience_key(booster_id: str, contact_id: str) -> bytes:
    """The key of a recipient's outcome on booster.audience: one per booster and contact, for compaction."""
    return f"{booster_id}/{contact_id}".encode()


# each topic once (its latest version), in the contract's order
INPUT_TOPICS = [s.name for s in CATALOG.values() if s.role == "input"]
CONTACT_INPUT_TOPICS = [s.name for s in CATALOG.values() if s.role == "input" and s.contact_keyed]


def spec_for(topic: str) -> TopicSpec:
    """The spec of a contract topic name (without prefix)."""
    try:
        return CATALOG[topic]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise BoosterError(f"unknown topic {topic!r}; the contract's topics are: {known}") from None
