"""Print the installed dbt-core's CLI surface as JSON: ``{"version": ..., "commands": {cmd: [params]}}``.

Why: ``airflow_dbt_provider/core/dbt_versions.py`` says which dbt-core minor added each option. That
table comes from running this in a virtualenv of each dbt-core minor and comparing the dumps, e.g.
``.venv-matrix/a3.3-d1.9/bin/python scripts/dbt_cli_surface.py > 1.9.json``.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from typing import Any


def surface() -> dict[str, list[str]]:
    """``{command: sorted parameter names}`` for every dbt command (``docs generate`` for groups)."""
    import click
    from dbt.cli.main import cli

    commands: dict[str, list[str]] = {}

    def walk(group: Any, prefix: str) -> None:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                walk(command, f"{prefix}{name} ")
            else:
                commands[f"{prefix}{name}"] = sorted({str(p.name) for p in command.params})

    walk(cli, "")
    return commands


if __name__ == "__main__":
    json.dump({"version": version("dbt-core"), "commands": surface()}, sys.stdout, indent=1)
    sys.stdout.write("\n")
