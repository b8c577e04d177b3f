"""Defaults of the dbt Cloud connection's optional fields, in one place for the connection form
(``get_provider_info.py``, which must stay import-light) and the client (``cloud/settings.py``,
``cloud/retry.py``): what the form shows is what an empty field means."""

from __future__ import annotations

#: Seconds one HTTP request to dbt Cloud may take (extra ``timeout``).
REQUEST_TIMEOUT_S = 30.0
#: Attempts per request, the first included (extra ``retry_max_attempts``; 1 disables retries).
RETRY_MAX_ATTEMPTS = 5
#: Wait before the first retry, doubled for each next one (extra ``retry_backoff_base``).
RETRY_BACKOFF_BASE_S = 1.0
#: Cap on one wait between attempts (extra ``retry_backoff_max``).
RETRY_BACKOFF_MAX_S = 30.0
