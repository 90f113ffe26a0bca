"""The operators' tooling: the `booster` command, topic administration, publish and tail, dead letters,
and the views of boosters, lag and audience."""
