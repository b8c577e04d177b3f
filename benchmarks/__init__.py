"""Benchmarks: where airflow-dbt-provider stands against the anchors users compare it with.

Run with ``make bench`` (or ``python -m benchmarks.run``). See ``docs/benchmarks.md``.
"""
