"""Object-storage URLs in the operators' arguments: recognised, checked and opened, with clear errors.

Everything goes through Airflow's own ``ObjectStoragePath`` (fsspec), so any backend a deployment
has registered works (``s3://`` with the Amazon provider, ``gs://`` with Google's, ``abfs://``
with Azure's, ``file://`` built in), with Airflow's convention for credentials: the connection id
as the URL's user part, ``s3://my_aws_conn@bucket/prefix``; without one the backend's default
credentials apply (an instance role, IRSA/workload identity on Kubernetes).

Why the checks here: the failures a user meets first are all silent or obscure further down — a
scheme no installed provider registers (``No filesystem registered``), a connection id that does
not exist (the Amazon hook logs a warning and goes on *anonymously*), s3fs missing. Each becomes a
:class:`ObjectStorageError` naming the user's parameter (``project_dir='s3://…'``) and the fix.
No message shows more of the URL than scheme, connection id, bucket and path.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from airflow_dbt_provider.core.errors import DbtConfigurationError

#: ``scheme://`` at the start of a value: a URL, not a local path.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
#: What to install for the schemes users ask for most; others get the generic hint.
PROVIDER_FOR_SCHEME = {
    **dict.fromkeys(("s3", "s3a", "s3n"), "apache-airflow-providers-amazon[s3fs]"),
    **dict.fromkeys(("gs", "gcs"), "apache-airflow-providers-google"),
    **dict.fromkeys(("abfs", "abfss", "adl", "az", "msabfs"), "apache-airflow-providers-microsoft-azure"),
}


class ObjectStorageError(DbtConfigurationError):
    """An object-storage URL that cannot be used as given; the message says why and how to fix it."""


def is_url(value: object) -> bool:
    """Whether an argument is an object-storage URL (``s3://…``, ``file://…``) rather than a path."""
    return isinstance(value, str) and _URL.match(value) is not None


def shown(url: str) -> str:
    """``url`` as messages show it: a password in the user part (never Airflow's convention, but
    possible) is dropped, and so are query and fragment (they may carry signed tokens)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}@{host}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def open_location(url: str, parameter: str) -> Any:
    """An ``ObjectStoragePath`` for ``url`` with its filesystem attached, or a clear error.

    :param parameter: how the user set the URL, for messages (``project_dir``, ``artifacts_dir``,
        ``[dbt_provider] parse_cache_url``).
    """
    from airflow.sdk import ObjectStoragePath

    where = f"{parameter}={shown(url)!r}"
    scheme = url.split("://", 1)[0].lower()
    if ":" in urllib.parse.urlsplit(url).netloc.rpartition("@")[0]:
        # Refused before Airflow sees it: its filesystems would log the whole user part.
        raise ObjectStorageError(
            f"{where} has a password in its user part; the part before '@' names an Airflow "
            f"connection ({scheme}://conn_id@bucket/path): keep the credentials in that connection"
        )
    try:
        path = ObjectStoragePath(url)
    except Exception as exc:  # upath refuses what it cannot parse, or a scheme fsspec never heard of
        if "Unsupported filesystem" in str(exc):
            raise ObjectStorageError(f"{where}: {_missing_backend(scheme)}") from None
        raise ObjectStorageError(f"{where} is not a URL Airflow's ObjectStoragePath accepts: {exc}") from None
    conn_id = urllib.parse.urlsplit(url).netloc.rpartition("@")[0]  # Airflow 3.1's path has no .conn_id
    if conn_id:
        _check_connection(conn_id, scheme, where)
    try:
        path.fs  # noqa: B018 - attaches the filesystem: the first place a missing backend shows
    except ValueError as exc:
        if "No filesystem registered" not in str(exc):
            raise ObjectStorageError(f"{where}: {scheme}:// storage could not be opened: {exc}") from exc
        raise ObjectStorageError(f"{where}: {_missing_backend(scheme)}") from None
    except ImportError as exc:
        raise ObjectStorageError(
            f"{where}: the {scheme}:// filesystem needs a library that is not installed ({exc}); "
            f"install {PROVIDER_FOR_SCHEME.get(scheme, 'the library it names')} on every worker"
        ) from None
    return path


def _missing_backend(scheme: str) -> str:
    provider = PROVIDER_FOR_SCHEME.get(scheme)
    if provider:
        return (
            f"no installed Airflow provider registers the {scheme}:// filesystem; install "
            f"{provider} on every worker (and the scheduler/DAG processor if DAGs read it)"
        )
    return (
        f"no installed Airflow provider registers the {scheme}:// filesystem; install the provider "
        "that does, or check the scheme's spelling (file:// is built in)"
    )


def _check_connection(conn_id: str, scheme: str, where: str) -> None:
    """Fail on a connection id that does not exist, instead of going on without credentials."""
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except Exception as exc:
        if "not found" in str(exc).lower() or "isn't defined" in str(exc) or "NotFound" in type(exc).__name__:
            kind = {"s3": "aws", "s3a": "aws", "s3n": "aws", "gs": "google_cloud_platform"}.get(scheme)
            raise ObjectStorageError(
                f"{where} names the Airflow connection {conn_id!r} (the part before '@'), which does "
                f"not exist; create it{f' (type {kind})' if kind else ''}, or drop '{conn_id}@' from "
                "the URL to use the worker's default credentials"
            ) from None
        raise ObjectStorageError(
            f"{where}: the Airflow connection {conn_id!r} could not be read ({type(exc).__name__})"
        ) from exc


def join(base: Any, relative: str) -> str:
    """The fsspec path of ``relative`` (``a/b.sql``) under the location ``base``."""
    return f"{str(base.path).rstrip('/')}/{relative}"


def make_parent_dirs(fs: Any, path: str) -> None:
    """Create ``path``'s parent directory where the backend has directories (``file://``).

    Only there: object stores have none, and e.g. s3fs's ``makedirs`` would *create the bucket*
    when it is missing — a typo in a URL must fail, not create storage.
    """
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if "file" in protocols or "local" in protocols:
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
