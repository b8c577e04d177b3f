"""dbt artifacts in XCom (``push_artifacts``): parsed JSON when small, gzip+base64 when large.

XCom backends limit value sizes (and the metadata database pays for every byte), while a
``manifest.json`` easily weighs megabytes; compressed it shrinks about tenfold.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

#: Artifact files an operator can push to XCom (``push_artifacts``).
PUSHABLE_ARTIFACTS = ("run_results.json", "manifest.json", "catalog.json", "sources.json")
#: Above this size (bytes of JSON) an artifact goes to XCom gzip-compressed and base64-encoded.
XCOM_COMPRESS_ABOVE = 64 * 1024


def encode_artifact(raw: bytes) -> Any:
    """An artifact for XCom: parsed JSON when small, gzip+base64 when large."""
    if len(raw) <= XCOM_COMPRESS_ABOVE:
        return json.loads(raw)
    return {"encoding": "gzip+base64", "data": base64.b64encode(gzip.compress(raw)).decode("ascii")}


def decode_artifact(value: Any) -> Any:
    """The inverse of :func:`encode_artifact`: the artifact's parsed JSON."""
    if isinstance(value, dict) and value.get("encoding") == "gzip+base64":
        return json.loads(gzip.decompress(base64.b64decode(value["data"])))
    return value
