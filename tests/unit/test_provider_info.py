"""Provider metadata must match the classes that exist, and Airflow must discover it."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import jsonschema
import pytest

import airflow_dbt_provider
from airflow_dbt_provider.get_provider_info import get_provider_info

KINDS = ("hooks", "operators", "sensors", "triggers")


def _listed_modules(info: dict, kind: str) -> set[str]:
    return {m for entry in info.get(kind, []) for m in entry["python-modules"]}


def _public_classes(module_name: str, base: type) -> set[str]:
    module = importlib.import_module(module_name)
    return {
        f"{module_name}.{name}"
        for name, obj in inspect.getmembers(module, inspect.isclass)
        if obj.__module__ == module_name and issubclass(obj, base) and not name.startswith("_")
    }


def test_entry_point_points_at_get_provider_info() -> None:
    eps = entry_points(group="apache_airflow_provider")
    (ep,) = [e for e in eps if e.dist and e.dist.name == "airflow-dbt-provider"]
    assert ep.load() is get_provider_info


def test_provider_info_validates_against_airflow_schema() -> None:
    import airflow

    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    jsonschema.validate(get_provider_info(), json.loads(schema_path.read_text()))


def test_every_listed_module_and_class_exists() -> None:
    info = get_provider_info()
    for kind in KINDS:
        for module in _listed_modules(info, kind):
            importlib.import_module(module)
    for dotted in info["extra-links"] + [c["hook-class-name"] for c in info["connection-types"]]:
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), dotted


def test_every_module_in_the_package_is_listed() -> None:
    """A new hooks/operators/sensors/triggers module that is not in provider info is a bug."""
    info = get_provider_info()
    for kind in KINDS:
        package = importlib.import_module(f"airflow_dbt_provider.{kind}")
        found = {
            f"airflow_dbt_provider.{kind}.{m.name}"
            for m in pkgutil.iter_modules(package.__path__)
            if not m.name.startswith("_")
        }
        assert found == _listed_modules(info, kind), kind


def test_every_extra_link_is_listed() -> None:
    from airflow.sdk import BaseOperatorLink

    package = importlib.import_module("airflow_dbt_provider.links")
    found: set[str] = set()
    for m in pkgutil.iter_modules(package.__path__):
        found |= _public_classes(f"airflow_dbt_provider.links.{m.name}", BaseOperatorLink)
    assert found == set(get_provider_info()["extra-links"])


def test_package_is_installed_from_its_wheel_with_py_typed() -> None:
    if not os.environ.get("ADP_REQUIRE_WHEEL"):
        pytest.skip("only make test (ADP_REQUIRE_WHEEL=1) insists on the installed wheel")
    pkg_dir = Path(airflow_dbt_provider.__file__).parent
    assert (pkg_dir / "py.typed").is_file()
    assert "site-packages" in pkg_dir.parts, f"tests must import the installed wheel, not {pkg_dir}"


def _airflow_providers(what: str) -> list[dict]:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "providers", what, "--output", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return list(json.loads(out[out.index("[") :]))


def test_airflow_providers_list_shows_us(airflow_home: Path) -> None:
    providers = {p["package_name"]: p["version"] for p in _airflow_providers("list")}
    assert providers.get("airflow-dbt-provider") == airflow_dbt_provider.__version__


def test_airflow_providers_triggers_and_links_show_ours(airflow_home: Path) -> None:
    triggers = {t["class"] for t in _airflow_providers("triggers")}
    assert "airflow_dbt_provider.triggers.dbt_cloud" in triggers
    links = {link["extra_link_class_name"] for link in _airflow_providers("links")}
    assert set(get_provider_info()["extra-links"]) <= links
