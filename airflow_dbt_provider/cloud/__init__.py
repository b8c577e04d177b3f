"""Airflow-free dbt Cloud API client: sync and async clients, typed models, errors, retry policy."""
