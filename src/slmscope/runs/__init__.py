"""Runs: the spec and plan, the executors and the results store."""
