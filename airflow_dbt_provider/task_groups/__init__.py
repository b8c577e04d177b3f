"""Task groups that render a dbt project as Airflow tasks."""
