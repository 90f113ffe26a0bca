"""A randomized fault campaign, the way Jepsen and Kafka's own system tests earn trust: many boosters
with overlapping deadlines, cancels close to their deadline, late, out-of-order and duplicated facts,
engagement in aborted transactions, and upstream producers of every kind (Java's murmur2 partitioner,
librdkafka's CRC32 one, plain and transactional), fed to real workers on a real broker while faults
strike at random: workers killed -9, frozen past their session timeout and resumed, joining and
leaving, the broker restarted and killed -9 (and on the three-node cluster, a leader killed).

The verifier computes every booster's outcome from its input with the pure core and checks every
command, report and audience outcome: nothing missing, nothing extra, no command id twice, report =
commands. The seed makes the plan (the boosters, the publishing and the faults): a failure replays.

    python -m tests.campaign --minutes 60 --seed 7       # the broker, workers and all, on this machine

CI runs a short one (tests/faults/test_campaign.py).
"""
