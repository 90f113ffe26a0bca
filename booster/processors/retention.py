"""How long the engine remembers what it decided, so that months of uptime do not grow its state.
Each table's rows carry the moment they refer to; the shell's sweep asks these functions
which rows have outlived their use. Campaign states, recipient rows, pending launches and fan-out
progress have their own ends (`campaigns.due`, `boosters.expire_pending`), decided where they change.

- launch-decisions: a launch's decision is kept BOOSTER_DECISION_RETENTION_DAYS after its deadline (its
  launch time for a launch without booster), so a replayed or re-published launch is recognised as the
  same one; a launch older than that is forgotten on arrival (`boosters.on_launch`), not decided again
  (deciding it again would call it stale and overwrite the report it got). Both ask
  `boosters.decision_expired`.
- summaries: the marker of a booster's final report is kept as long, so a replayed summary does not
  make a second report; measurements: the marker of a booster's results likewise.
- contacts: a deleted contact's row goes the longest window after its deletion (no campaign launched
  after a deletion reaches the contact); unsubscribes, blocks, reachability and time zones go after
  BOOSTER_CONTACT_RETENTION_DAYS without a new fact about the contact, and are kept for ever when it
  is 0 (the default: an unsubscribe must hold however long ago it was given, also for a booster on
  another channel than its campaign).
"""

from __future__ import annotations

from booster.processors.boosters import MAX_DELAY_MS
from booster.processors.recipients import ContactState
from booster.processors.summaries import SummaryState
from booster.processors.uplift import Measuring


def summaries_expired(state: SummaryState, now: int, retention_ms: int) -> bool:
    """A final report's marker past its retention. Summaries still waiting for other partitions stay:
    those partitions will fire (a booster never stops half-way, R13)."""
    return state.done and state.deadline is not None and now >= state.deadline + retention_ms


def measuring_expired(state: Measuring, now: int, retention_ms: int) -> bool:
    """A booster's results marker past its retention (partitions still to measure stay, as above)."""
    return state.done and state.deadline is not None and now >= state.deadline + retention_ms


def contact_expired(state: ContactState, now: int, *, retention_ms: int, allowed_lateness_ms: int) -> bool:
    """Whether a contact's row can go (see the module's note). The caller keeps it while a booster that
    has not fired yet has the contact among its recipients: a worker far behind may still count it."""
    if state.deleted_at is not None and now >= state.deleted_at + MAX_DELAY_MS + allowed_lateness_ms:
        return True
    if retention_ms <= 0:
        return False
    facts = [at for _, at in state.unsubscribed] + [at for at, _ in state.blocks]
    facts += [at for _, at, _ in state.reachability] + [at for at, _ in state.time_zones]
    if state.deleted_at is not None:
        facts.append(state.deleted_at)
    return bool(facts) and now >= max(facts) + retention_ms
