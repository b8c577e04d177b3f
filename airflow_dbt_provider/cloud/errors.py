"""Errors raised by the dbt Cloud client.

Every message names what was asked for (account, job, run) and what to check, so a failed task's
log says how to fix it. No message ever contains the API token: errors are built from the request
description and the response body only, never from request headers.
"""

from __future__ import annotations


class DbtCloudError(Exception):
    """Base class of every error the dbt Cloud client raises."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class DbtCloudAuthError(DbtCloudError):
    """HTTP 401/403: the token is wrong, expired, or lacks permission for the account."""


class DbtCloudNotFoundError(DbtCloudError):
    """HTTP 404: the account, job, run or artifact does not exist (or the token cannot see it)."""


class DbtCloudRequestError(DbtCloudError):
    """HTTP 400 or another 4xx: dbt Cloud rejected the request as sent."""


class DbtCloudTransientError(DbtCloudError):
    """Retries exhausted on 429, 5xx, connection errors or timeouts; trying later may succeed."""


class DbtCloudTLSError(DbtCloudError):
    """The TLS handshake failed: the server's certificate is not trusted (CA bundle) or invalid."""


class DbtCloudResponseError(DbtCloudError):
    """dbt Cloud answered 2xx with a body the client cannot read (not JSON, or not the expected shape)."""


class DbtCloudLookupError(DbtCloudError):
    """A lookup by name found no match or more than one; the message lists the candidates."""


class DbtCloudConfigError(DbtCloudError, ValueError):
    """Invalid client settings or request options (bad access URL, missing token, cause too long...)."""
