"""Client settings and their one-time resolution into what goes on the wire.

Both clients (requests, and the async one on aiohttp) must reach the same host through the
same proxy and trust the same certificates. Left alone they would not: requests reads
``REQUESTS_CA_BUNDLE`` and lets it override a session's ``verify``; aiohttp reads neither
CA variable. So the environment is read here, once, into a :class:`Transport`, and both clients are
handed the result with their own environment handling turned off.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from airflow_dbt_provider import __version__
from airflow_dbt_provider.cloud.errors import DbtCloudConfigError
from airflow_dbt_provider.cloud.retry import RetryPolicy
from airflow_dbt_provider.connection_defaults import REQUEST_TIMEOUT_S

log = logging.getLogger(__name__)

LEGACY_MULTI_TENANT_HOST = "cloud.getdbt.com"
DEFAULT_ACCESS_URL = f"https://{LEGACY_MULTI_TENANT_HOST}"
DEFAULT_USER_AGENT = f"airflow-dbt-provider/{__version__}"
#: Environment variables naming a CA bundle, in the order requests honours them.
CA_BUNDLE_ENV_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")


def normalize_access_url(access_url: str | None) -> str:
    """``scheme://host[:port]`` from a host, ``host:port`` or URL (a pasted API path is dropped).

    Accepts what users paste: ``ab123.us1.dbt.com``, ``emea.dbt.com``, ``https://cloud.getdbt.com/``,
    ``https://ab123.us1.dbt.com/api/v2/``, ``localhost:8443``. No scheme means HTTPS.
    """
    text = (access_url or "").strip()
    if not text:
        return DEFAULT_ACCESS_URL
    if "://" not in text:
        text = f"https://{text}"
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"}:
        raise DbtCloudConfigError(
            f"dbt Cloud access URL {access_url!r} has scheme {parts.scheme!r}; use https:// "
            "(or no scheme), e.g. https://ab123.us1.dbt.com"
        )
    try:
        port = parts.port
    except ValueError:
        raise DbtCloudConfigError(
            f"dbt Cloud access URL {access_url!r} has an invalid port; expected host or host:port, "
            "e.g. ab123.us1.dbt.com or localhost:8443"
        ) from None
    host = parts.hostname
    if not host or " " in host:
        raise DbtCloudConfigError(
            f"dbt Cloud access URL {access_url!r} has no host name; copy the Access URL from "
            "dbt Cloud > Account settings, e.g. https://ab123.us1.dbt.com"
        )
    if parts.username or parts.password:
        raise DbtCloudConfigError(
            "dbt Cloud access URL must not contain credentials; put the API token in the "
            "connection's password (API token) field"
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}"


@dataclass(frozen=True)
class ClientSettings:
    """Everything a dbt Cloud client needs; the token is kept out of ``repr``.

    ``verify`` is ``True`` (default CA store, or the bundle named by the standard environment
    variables), ``False`` (no verification: only for testing) or a CA bundle path. ``proxies`` is a
    requests-style mapping (``{"https": "http://proxy:3128"}``); empty means the ``HTTPS_PROXY`` /
    ``NO_PROXY`` environment applies.
    """

    account_id: int | None
    token: str = field(repr=False)
    access_url: str = DEFAULT_ACCESS_URL
    verify: bool | str = True
    proxies: dict[str, str] = field(default_factory=dict, hash=False, repr=False)  # may hold passwords
    timeout: float = REQUEST_TIMEOUT_S
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    user_agent: str = DEFAULT_USER_AGENT

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or not self.token.strip():
            raise DbtCloudConfigError(
                "dbt Cloud API token is empty; create a service token in dbt Cloud (Account settings > "
                "Service tokens) and put it in the connection's password (API token) field"
            )
        object.__setattr__(self, "token", self.token.strip())
        object.__setattr__(self, "access_url", normalize_access_url(self.access_url))
        if self.account_id is not None:
            try:
                account_id = int(self.account_id)
            except (TypeError, ValueError):
                raise DbtCloudConfigError(
                    f"dbt Cloud account id must be a number (see the URL of your account: "
                    f".../deploy/<account id>/...), got {self.account_id!r}"
                ) from None
            object.__setattr__(self, "account_id", account_id)
        if not self.timeout or self.timeout <= 0:
            raise DbtCloudConfigError(f"dbt Cloud request timeout must be positive, got {self.timeout!r}")
        if isinstance(self.verify, str) and not Path(self.verify).is_file():
            raise DbtCloudConfigError(
                f"dbt Cloud CA bundle {self.verify!r} does not exist or is not a file; give the path of a "
                "PEM file readable by the worker and the triggerer"
            )

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown: the token and any proxy password."""
        passwords = (urlsplit(p).password for p in self.proxies.values() if "@" in p)
        return (self.token, *(p for p in passwords if p))

    @property
    def api_base(self) -> str:
        """The API root, e.g. ``https://ab123.us1.dbt.com``."""
        return self.access_url

    @property
    def host(self) -> str:
        return urlsplit(self.access_url).hostname or ""

    @property
    def is_legacy_host(self) -> bool:
        """True for the shared ``cloud.getdbt.com`` URL dbt Labs is moving accounts away from."""
        return self.host == LEGACY_MULTI_TENANT_HOST

    def web_run_url(self, account_id: int, project_id: int | None, run_id: int) -> str:
        """The dbt Cloud web page of a run."""
        if project_id is None:
            return f"{self.access_url}/deploy/{account_id}/runs/{run_id}/"
        return f"{self.access_url}/deploy/{account_id}/projects/{project_id}/runs/{run_id}/"


@dataclass(frozen=True)
class Transport:
    """TLS and proxy settings as resolved for the one host a client talks to."""

    verify: bool | str
    proxy: str | None


def resolve_transport(settings: ClientSettings) -> Transport:
    """Resolve CA bundle and proxy from the settings, then the standard environment variables.

    Explicit settings win. ``verify=True`` picks up ``REQUESTS_CA_BUNDLE``, then ``SSL_CERT_FILE``,
    then ``CURL_CA_BUNDLE``, as requests does. Proxies come from ``settings.proxies`` (keyed by
    scheme, or ``all``), else from ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` unless ``NO_PROXY``
    covers the host.
    """
    if settings.is_legacy_host:
        log.info(
            "dbt Cloud: %s is the shared legacy URL; set the connection's host to your account's "
            "Access URL (Account settings > Access URLs, e.g. ab123.us1.dbt.com).",
            LEGACY_MULTI_TENANT_HOST,
        )
    return Transport(verify=_resolve_verify(settings.verify), proxy=_resolve_proxy(settings))


def _resolve_verify(verify: bool | str) -> bool | str:
    if verify is not True:
        return verify
    for name in CA_BUNDLE_ENV_VARS:
        path = os.environ.get(name, "").strip()
        if path and Path(path).is_file():
            return path
    return True


def _resolve_proxy(settings: ClientSettings) -> str | None:
    scheme = urlsplit(settings.access_url).scheme
    if settings.proxies:
        proxies = {str(k).lower(): str(v) for k, v in settings.proxies.items() if v}
        for key in (f"{scheme}://{settings.host}", scheme, "all"):
            if key in proxies:
                return proxies[key]
        return None
    env = urllib.request.getproxies_environment()
    if urllib.request.proxy_bypass_environment(settings.host, env):  # type: ignore[attr-defined]
        return None
    return env.get(scheme) or env.get("all") or None
