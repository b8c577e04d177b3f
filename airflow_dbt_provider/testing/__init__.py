"""Testing helpers shipped with the provider: the dbt Cloud emulator and pytest fixtures."""
