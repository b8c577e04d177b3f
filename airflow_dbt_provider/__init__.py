"""Apache Airflow provider for dbt Core (run in process) and dbt Cloud."""

__version__ = "0.1.0"
