"""The pieces every adapter mapping shares: the connection protocol, the result type, secrets, errors.

Why secrets are moved out of the target: the profiles file is written to disk for dbt to read, and
the target dict may be logged or shown while debugging. So each secret value is replaced by
``{{ env_var('DBT_ENV_SECRET_ADP_<NAME>') }}`` and carried separately in :attr:`DbtTarget.env`,
which the caller puts into the environment only for the duration of the dbt invocation. The
``DBT_ENV_SECRET_`` prefix is dbt's own convention: dbt scrubs these values from its log lines and
error messages and substitutes them after Jinja rendering, so a password such as ``"12345"`` stays a
string and one containing ``{{`` is never evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml

#: Prefix of the environment variables that carry secrets; dbt scrubs ``DBT_ENV_SECRET*`` values.
SECRET_ENV_PREFIX = "DBT_ENV_SECRET_ADP_"

#: Target keys whose values are secrets, wherever they appear (also nested, e.g. keyfile_json).
SECRET_KEYS = frozenset(
    {
        "password",
        "pass",
        "token",
        "secret",
        "private_key",
        "private_key_passphrase",
        "client_secret",
        "refresh_token",
        "access_token",
        "api_key",
        "secret_access_key",
        "session_token",
    }
)
#: Key suffixes that mark secrets too (``oauth_client_secret``, ``jwt_token``, ``motherduck_token``…).
SECRET_SUFFIXES = ("_password", "_token", "_secret", "_secret_access_key", "_passphrase", "_api_key")


class ProfileMappingError(ValueError):
    """An Airflow connection cannot be turned into a dbt target; the message says what to fix."""


class ConnectionLike(Protocol):
    """What a mapping reads from an Airflow ``Connection`` (``airflow.sdk`` or ``airflow.models``)."""

    @property
    def conn_type(self) -> str | None: ...
    @property
    def host(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...
    @property
    def login(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def schema(self) -> str | None: ...
    @property
    def extra_dejson(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DbtTarget:
    """One dbt target built from a connection, split into a secret-free target and its secrets."""

    profile_name: str
    target_name: str
    #: The dbt target dict; every secret replaced by ``{{ env_var('DBT_ENV_SECRET_ADP_...') }}``.
    output: dict[str, Any]
    #: Secret values by environment variable name. Hidden from ``repr`` so they cannot reach a log.
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    def profiles_yml(self) -> str:
        """The text of a ``profiles.yml`` holding just this profile and target (no secret inside)."""
        profile = {"target": self.target_name, "outputs": {self.target_name: self.output}}
        document = {self.profile_name: profile}
        return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)

    @property
    def adapter_type(self) -> str:
        """The dbt adapter type (``postgres``, ``snowflake``…) of this target."""
        return str(self.output["type"])


class Secret(str):
    """Marks a value to be moved into :attr:`DbtTarget.env`; a ``str`` so mappings stay simple."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')"


def is_secret_key(key: str) -> bool:
    """Whether a target key holds a secret by its name (used for overrides and generic targets)."""
    lowered = key.lower()
    return lowered in SECRET_KEYS or lowered.endswith(SECRET_SUFFIXES)


def _env_name(path: tuple[str, ...]) -> str:
    return SECRET_ENV_PREFIX + re.sub(r"[^A-Z0-9]+", "_", "__".join(path).upper()).strip("_")


def _is_template(value: Any) -> bool:
    # An existing Jinja expression (``{{ env_var('MY_PW') }}``) is a reference, not a secret value.
    return isinstance(value, str) and "{{" in value and not isinstance(value, Secret)


def extract_secrets(output: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Replace every secret in ``output`` (marked or named like one) by an ``env_var`` reference.

    Returns the cleaned target and the secrets by environment variable name. Nested dicts and
    lists are walked, so ``keyfile_json.private_key`` or a DuckDB ``secrets`` entry is covered.
    """
    env: dict[str, str] = {}

    def walk(value: Any, path: tuple[str, ...], by_name: bool) -> Any:
        if isinstance(value, Mapping):
            return {str(k): walk(v, (*path, str(k)), is_secret_key(str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, str(i)), False) for i, v in enumerate(value)]
        if value is None or _is_template(value):
            return value
        if isinstance(value, Secret) or by_name:
            name = _env_name(path)
            env[name] = str(value)
            return "{{ env_var('" + name + "') }}"
        return value

    cleaned = walk(dict(output), (), False)
    return cleaned, env


@dataclass(frozen=True)
class ConnectionReader:
    """Reads one connection's fields for a mapping, with errors that name the connection."""

    conn: ConnectionLike
    adapter: str

    @property
    def conn_id(self) -> str:
        return str(getattr(self.conn, "conn_id", None) or "<unnamed>")

    @property
    def extra(self) -> dict[str, Any]:
        try:
            extra = self.conn.extra_dejson
        except Exception as exc:  # airflow raises on an extra that is not JSON
            raise ProfileMappingError(
                f"Connection {self.conn_id!r}: its Extra is not valid JSON ({type(exc).__name__})"
            ) from None
        return dict(extra or {})

    def extra_get(self, *names: str, default: Any = None) -> Any:
        """An extra value by any of its names, also in the legacy ``extra__<conn_type>__<name>`` form."""
        extra = self.extra
        conn_type = self.conn.conn_type or ""
        for name in names:
            for key in (name, f"extra__{conn_type}__{name}"):
                value = extra.get(key)
                if value not in (None, ""):
                    return value
        return default

    def require(self, value: Any, field_label: str, hint: str = "") -> Any:
        """``value`` if set, else a :class:`ProfileMappingError` naming the field and the connection."""
        if value in (None, ""):
            raise ProfileMappingError(
                f"Connection {self.conn_id!r} (conn_type {self.conn.conn_type!r}) is missing {field_label}, "
                f"which a dbt {self.adapter} target needs." + (f" {hint}" if hint else "")
            )
        return value

    def error(self, message: str) -> ProfileMappingError:
        return ProfileMappingError(f"Connection {self.conn_id!r} (dbt {self.adapter} target): {message}")


def pick(extra: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The subset of ``extra`` whose keys a dbt target understands, skipping empty values."""
    return {k: extra[k] for k in keys if extra.get(k) not in (None, "")}


def as_int(reader: ConnectionReader, value: Any, field_label: str) -> int:
    """An integer field, or an error that says which field is not a number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise reader.error(f"{field_label} must be an integer, got {value!r}") from None


#: A mapping turns a connection into a dbt target dict (secrets marked with :class:`Secret`).
Mapper = Callable[[ConnectionLike], dict[str, Any]]
