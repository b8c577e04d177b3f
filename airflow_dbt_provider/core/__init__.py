"""Airflow-free dbt Core runner: a dbtRunner wrapper, typed results, events to log lines, parse cache."""
