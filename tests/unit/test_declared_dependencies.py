"""Every third-party module the package imports at run time comes from a dependency it declares.

A module that is only there because another dependency happens to pull it in today (``yaml``
through dbt, ``yarl`` through aiohttp) breaks a user's install the day that dependency changes.
Imports under ``if TYPE_CHECKING:`` and inside ``try: ... except ImportError:`` are not run-time
requirements; ``testing/`` (the emulator) is checked the same way, except its pytest plugin.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import tomllib

import airflow_dbt_provider

PACKAGE = Path(airflow_dbt_provider.__file__).resolve().parent
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _distribution(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> tuple[set[str], set[str]]:
    """(runtime dependencies, optional ones except ``dev``) as normalised distribution names."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    runtime = {_distribution(r) for r in project["dependencies"]}
    extras = {
        _distribution(r)
        for extra, requirements in project["optional-dependencies"].items()
        if extra != "dev"
        for r in requirements
    }
    return runtime, extras - {"airflow-dbt-provider"}


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether the import sits under ``if TYPE_CHECKING`` or in a ``try`` that catches ImportError."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
        if isinstance(node, ast.Try) and any(
            "ImportError" in ast.unparse(h.type) for h in node.handlers if h.type is not None
        ):
            return True
    return False


def _imported_top_levels() -> dict[str, set[str]]:
    """Third-party top-level modules imported at run time, with the files importing each."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "testing" / "pytest_plugin.py":
            continue  # loaded only by pytest, which is there by definition
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            if _guarded(node, parents):
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "airflow_dbt_provider":
                    found.setdefault(top, set()).add(str(path.relative_to(PACKAGE)))
    return found


#: Modules of the optional integrations that the extra's own package brings: dbt-core ships
#: ``dbt_common``, the OpenLineage provider ships the ``openlineage`` client. Both are imported
#: only when that integration is used.
FROM_AN_EXTRA = {"dbt_common": "dbt-core", "openlineage": "apache-airflow-providers-openlineage"}


def _requires(distribution: str) -> set[str]:
    """The distributions ``distribution`` itself requires (to allow dbt-core's own packages)."""
    return {_distribution(r) for r in metadata.requires(distribution) or [] if "extra ==" not in r}


def _undeclared(runtime: set[str], extras: set[str]) -> dict[str, tuple[list[str], list[str]]]:
    """Modules imported at run time that no declared distribution provides."""
    provided = metadata.packages_distributions()
    undeclared = {}
    for module, files in sorted(_imported_top_levels().items()):
        if module == "airflow":
            continue  # apache-airflow is declared; its namespace spans many distributions
        sources = {d.lower().replace("_", "-") for d in provided.get(module, [])}
        allowed = runtime | extras
        if module in FROM_AN_EXTRA and FROM_AN_EXTRA[module] in extras:
            allowed |= _requires(FROM_AN_EXTRA[module])
        if not sources & allowed:
            undeclared[module] = (sorted(sources), sorted(files))
    return undeclared


def test_every_runtime_import_is_a_declared_dependency() -> None:
    undeclared = _undeclared(*_declared())
    assert not undeclared, f"imported at run time but not declared in pyproject.toml: {undeclared}"


def test_a_dependency_missing_from_pyproject_is_reported() -> None:
    """The check itself: with PyYAML left out of the runtime dependencies, ``yaml`` is reported."""
    runtime, extras = _declared()
    undeclared = _undeclared(runtime - {"pyyaml"}, extras)
    assert list(undeclared) == ["yaml"]
    assert "core/deps.py" in undeclared["yaml"][1]
