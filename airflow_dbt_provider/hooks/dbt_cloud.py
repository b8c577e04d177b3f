"""Airflow hook for dbt Cloud: turns an Airflow connection into dbt Cloud client settings.

The connection type is ``dbt_cloud_api``, not ``dbt_cloud``: the official provider registers
``dbt_cloud`` and Airflow keeps the first registration, so sharing the name would make our form
fields and ``test_connection`` disappear whenever both providers are installed. Connections made for
the official provider (type ``dbt_cloud``) are read unchanged — both use login = account id,
password = token, host = tenant/access URL, extra ``proxies`` — so nobody has to recreate them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import BaseHook

from airflow_dbt_provider.cloud import (
    AsyncDbtCloudClient,
    ClientSettings,
    DbtCloudAuthError,
    DbtCloudClient,
    DbtCloudConfigError,
    DbtCloudError,
    DbtCloudNotFoundError,
    DbtCloudTLSError,
    DbtCloudTransientError,
    RetryPolicy,
)
from airflow_dbt_provider.compat import connection_form
from airflow_dbt_provider.connection_defaults import REQUEST_TIMEOUT_S
from airflow_dbt_provider.get_provider_info import DBT_CLOUD_CONNECTION

CONN_TYPE = "dbt_cloud_api"
OFFICIAL_CONN_TYPE = "dbt_cloud"


@connection_form(DBT_CLOUD_CONNECTION)
class DbtCloudHook(BaseHook):
    """Interact with dbt Cloud through an Airflow connection of type ``dbt_cloud_api``.

    :param dbt_cloud_conn_id: the connection: login = account id, password = API token, host =
        access URL; extras ``proxies``, ``ca_bundle``, ``verify_ssl``, ``timeout``, ``retry_*``.
    """

    conn_name_attr = "dbt_cloud_conn_id"
    default_conn_name = f"{CONN_TYPE}_default"
    conn_type = CONN_TYPE
    hook_name = "dbt Cloud API"

    def __init__(self, dbt_cloud_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dbt_cloud_conn_id = dbt_cloud_conn_id

    def get_settings(self) -> ClientSettings:
        """Client settings from the connection (synchronous lookup)."""
        return settings_from_connection(self.get_connection(self.dbt_cloud_conn_id))

    async def aget_settings(self) -> ClientSettings:
        """Client settings from the connection, looked up without blocking the event loop."""
        return settings_from_connection(await self.aget_connection(self.dbt_cloud_conn_id))

    def get_client(self, account_id: int | None = None) -> DbtCloudClient:
        """A sync client (of ``account_id`` instead of the connection's, when given); close it (or
        use it as a context manager) when done. The operators and the sensor make theirs here."""
        return DbtCloudClient(with_account(self.get_settings(), account_id))

    async def aget_client(self, account_id: int | None = None) -> AsyncDbtCloudClient:
        """An async client; ``aclose()`` it (or ``async with``) when done."""
        return AsyncDbtCloudClient(with_account(await self.aget_settings(), account_id))

    def test_connection(self) -> tuple[bool, str]:
        """Authenticate for real (fetch the account) and explain any failure in plain words."""
        try:
            settings = self.get_settings()
            if settings.account_id is None:
                return (
                    False,
                    "Set the Account ID (login) field: it is the number after /deploy/ in dbt Cloud URLs.",
                )
            with DbtCloudClient(settings) as client:
                account = client.get_account()
        except DbtCloudConfigError as exc:
            return False, f"Invalid connection settings: {exc}"
        except DbtCloudAuthError as exc:
            return False, f"Authentication failed: {exc}"
        except DbtCloudNotFoundError as exc:
            return False, f"Account not found: {exc}"
        except DbtCloudTLSError as exc:
            return False, f"TLS failure: {exc}"
        except DbtCloudTransientError as exc:
            return False, f"dbt Cloud unreachable: {exc}"
        except DbtCloudError as exc:
            return False, str(exc)
        return True, f"Connected to dbt Cloud account {account.id} ({account.name}) at {settings.access_url}."


def with_account(settings: ClientSettings, account_id: int | None) -> ClientSettings:
    """``settings`` for ``account_id`` (a task's ``account_id``) instead of the connection's account."""
    return settings if account_id is None else replace(settings, account_id=account_id)


def settings_from_connection(conn: Any) -> ClientSettings:
    """Client settings from an Airflow connection of our type or the official ``dbt_cloud`` type."""
    extra = _extra(conn)
    account = conn.login or _field(extra, "account_id")
    token = conn.password or _field(extra, "api_token") or ""
    if not token:
        raise DbtCloudConfigError(
            f"Connection {conn.conn_id!r} has no API token: put a dbt Cloud service token in its "
            "password (API token) field"
        )
    host = _with_port(conn.host or _field(extra, "access_url") or "", conn.port)
    return ClientSettings(
        account_id=_account_id(conn.conn_id, account),
        token=token,
        access_url=host,
        verify=_verify(extra),
        proxies=_proxies(conn.conn_id, _field(extra, "proxies")),
        timeout=_number(conn.conn_id, extra, "timeout", REQUEST_TIMEOUT_S),
        retry=_retry(conn.conn_id, extra),
    )


def _with_port(host: str, port: int | None) -> str:
    """The access URL with the connection's Port field applied, when the URL names no port itself.

    Why the Port field exists at all: Airflow 3.3's connection list "Test" button posts
    ``port=0`` for a connection whose port is empty and the API then refuses to test it, so
    users of non-default ports (single-tenant hosts, the emulator) keep the port in its own field.
    """
    if not port or not host:
        return host
    parts = urlsplit(host if "://" in host else f"//{host}")
    if parts.port is not None:
        return host
    netloc = f"{parts.hostname}:{port}"
    if "://" not in host:
        return netloc + parts.path
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _extra(conn: Any) -> dict[str, Any]:
    value = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    return dict(value) if isinstance(value, Mapping) else {}


def _field(extra: Mapping[str, Any], name: str) -> Any:
    """An extra field, stored plain (Airflow 3 forms) or prefixed (older forms and exports)."""
    for key in (name, f"extra__{CONN_TYPE}__{name}", f"extra__{OFFICIAL_CONN_TYPE}__{name}"):
        value = extra.get(key)
        if value not in (None, ""):
            return value
    return None


def _account_id(conn_id: str, value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise DbtCloudConfigError(
            f"Connection {conn_id!r}: the Account ID (login) must be a number, e.g. 12345 from "
            f"https://ab123.us1.dbt.com/deploy/12345/..., got {value!r}"
        ) from None


def _verify(extra: Mapping[str, Any]) -> bool | str:
    bundle = _field(extra, "ca_bundle")
    if bundle:
        return str(bundle)
    flag = _field(extra, "verify_ssl")
    if isinstance(flag, str):
        return flag.strip().lower() not in {"false", "0", "no", "off"}
    return True if flag is None else bool(flag)


def _proxies(conn_id: str, value: Any) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = {"https": value.strip(), "http": value.strip()}
    if not isinstance(value, Mapping):
        raise DbtCloudConfigError(
            f"Connection {conn_id!r}: proxies must be a JSON object such as "
            '{"https": "http://proxy.example.com:3128"} or a single proxy URL'
        )
    return {str(k): str(v) for k, v in value.items() if v}


def _number(conn_id: str, extra: Mapping[str, Any], name: str, default: float) -> float:
    value = _field(extra, name)
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DbtCloudConfigError(
            f"Connection {conn_id!r}: extra {name!r} must be a number, got {value!r}"
        ) from None


def _retry(conn_id: str, extra: Mapping[str, Any]) -> RetryPolicy:
    defaults = RetryPolicy()
    return RetryPolicy(
        max_attempts=int(_number(conn_id, extra, "retry_max_attempts", defaults.max_attempts)),
        backoff_base=_number(conn_id, extra, "retry_backoff_base", defaults.backoff_base),
        backoff_max=_number(conn_id, extra, "retry_backoff_max", defaults.backoff_max),
    )
