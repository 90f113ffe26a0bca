"""Known-answer scenarios, worker processes and the demo: what the demo, the tests and the benchmark
drive the engine with. Not imported by the engine itself."""
