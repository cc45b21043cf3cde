"""The jobs that drive the stages: the nightly run and the archive backfill (its driver and a worker's partition).

May import every folder but cli; only cli imports runs.
"""
