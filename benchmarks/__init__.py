"""Benchmark tooling: a synthetic cluster generator and checks with known answers."""
