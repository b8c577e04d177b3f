"""Check a :class:`DbtTarget` the way dbt will: render it and build the adapter's credentials.

Why: a mapping bug (a misspelt key, a wrong type, a missing required field) should surface when
the connection is tested, not as a failed task in the middle of the night. This goes through
dbt's own profile loader — ``env_var`` rendering with the secrets, the adapter plugin's alias
translation, schema validation and its credentials class — without connecting anywhere. It
needs dbt-core and the target's adapter installed, and never touches ``os.environ``: the secrets
are given to dbt through its invocation context, inside a copied ``contextvars`` context.
"""

from __future__ import annotations

import contextvars
import os
from typing import Any

import yaml

from airflow_dbt_provider.profiles._base import DbtTarget, ProfileMappingError


def _load_credentials(target: DbtTarget) -> Any:
    from dbt.config.profile import Profile
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context

    set_invocation_context({**os.environ, **target.env})
    raw = yaml.safe_load(target.profiles_yml())[target.profile_name]
    # The two steps of Profile.from_raw_profile_info, without the global flags it also reads.
    target_name, data = Profile.render_profile(
        raw, target.profile_name, target.target_name, ProfileRenderer({})
    )
    data.pop("threads", None)
    return Profile._credentials_from_profile(data, target.profile_name, target_name)


def validate_target(target: DbtTarget) -> Any:
    """The adapter's credentials object for ``target``, or :class:`ProfileMappingError` saying why not.

    The returned object holds the rendered secrets: use it, never log it.
    """
    try:
        return contextvars.copy_context().run(_load_credentials, target)
    except ImportError as exc:
        raise ProfileMappingError(
            f"cannot validate a dbt {target.adapter_type} target here: {exc.name or exc} is not installed"
        ) from None
    except Exception as exc:
        # dbt's errors name the profile and the field; secrets are not in them (they are only
        # substituted after validation succeeds), but scrub anyway in case a future dbt differs.
        message = str(exc)
        for value in target.env.values():
            if value:
                message = message.replace(value, "***")
        raise ProfileMappingError(f"dbt rejects the {target.adapter_type} target: {message}") from exc
