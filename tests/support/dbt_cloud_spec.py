"""Validate dbt Cloud API responses against the public OpenAPI spec in ``../shared/dbt-cloud-openapi``.

The spec is OpenAPI 3.0, whose schema dialect is JSON Schema draft 4 plus ``nullable``. We convert
``nullable`` into a ``"null"`` type (the only 3.0-specific keyword that changes validation here),
check ``format: date-time`` for real (RFC 3339), and resolve ``$ref``s against the spec document.
With ``closed=True`` every object schema also rejects properties the spec does not declare: that is
*stricter* than the spec (which allows extras) and is how we check the emulator's strict mode adds
nothing of its own.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = REPO / ".." / "shared" / "dbt-cloud-openapi"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@functools.cache
def load_spec(version: str) -> dict[str, Any]:
    """The parsed ``openapi-<version>.yaml`` (``"v2"`` or ``"v3"``)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses the 14k-line v3 spec 10x faster
    return yaml.load((SPEC_DIR / f"openapi-{version}.yaml").read_text(), Loader=loader)


def _nullable_to_type(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _nullable_to_type(v) for k, v in node.items()}
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        return node
    if isinstance(node, list):
        return [_nullable_to_type(v) for v in node]
    return node


def _close_objects(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _close_objects(v) for k, v in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_close_objects(v) for v in node]
    return node


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date-time", raises=ValueError)(_is_datetime)


@functools.cache
def _root(version: str, closed: bool) -> dict[str, Any]:
    components = _nullable_to_type(copy.deepcopy(load_spec(version)["components"]))
    if closed:
        components = _close_objects(components)
    return {"components": components}


def response_schema_ref(version: str, path: str, method: str, status: str = "200") -> str:
    """The ``$ref`` of the JSON response schema the spec declares for ``method path status``."""
    operation = load_spec(version)["paths"][path][method.lower()]
    return operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]


def validate_response(
    version: str, path: str, method: str, body: Any, *, status: str = "200", closed: bool = False
) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``body`` matches the spec's response schema."""
    ref = response_schema_ref(version, path, method, status)
    schema = {**_root(version, closed), "$ref": ref}
    validator = jsonschema.Draft4Validator(schema, format_checker=_FORMATS)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        details = "\n".join(f"- at {list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])
        raise jsonschema.ValidationError(
            f"{method.upper()} {path}: {len(errors)} spec violation(s):\n{details}"
        )
