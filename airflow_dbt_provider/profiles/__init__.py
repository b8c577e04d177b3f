"""Build dbt targets (profiles) from Airflow connections."""
