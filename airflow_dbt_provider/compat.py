"""What differs across the Airflow versions we support (3.1, 3.2, 3.3), each fact stated once.

Why one module: the provider installs on Airflow 3.1.8 and later, and a few features it uses arrived
later. Every place that depends on one of them asks here, so a DAG file never fails to parse on an
older Airflow, and the degradation is described in one place (docs/compatibility.md):

* **Task state store** (AIP-103, Airflow 3.3): ``context["task_state_store"]``, shared by every
  try of a task instance. Without it, ``retry_from_failure`` keeps its state in ``artifacts_dir``
  and the dbt Cloud operator finds its run by the token it puts in the run's ``cause``.
* **Trigger ``on_kill``** (Airflow 3.3): the triggerer tells a trigger its deferred task was killed.
  Without it, a task killed while deferred cannot cancel its dbt Cloud run from the triggerer; the
  deadline (``timeout``) still cancels it, in ``execute_complete``.
* **``start_from_trigger``** (Airflow 3.3): the scheduler defers a task straight to its trigger,
  without a worker. Airflow 3.1 and 3.2 ship the attribute but the scheduler's code for it is
  commented out; there a ``single_build`` node task starts on a worker and defers.
* **Declarative ``conn-fields``** (Airflow 3.2): the connection form reads our extra fields from
  provider info. On 3.1 the hooks' ``get_connection_form_widgets``/``get_ui_field_behaviour``
  (built here from the same provider info) show them instead; 3.2+ skips those methods.
* ``airflow.sdk.conf`` and ``airflow.sdk.exceptions.AirflowSensorTimeout`` (Airflow 3.2): on 3.1
  the same objects live in ``airflow.configuration`` and ``airflow.exceptions``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

from airflow import __version__ as AIRFLOW_VERSION

T = TypeVar("T")

#: ``(major, minor)`` of the running Airflow (``3.1.8`` -> ``(3, 1)``; pre-releases count as their release).
_RELEASE = tuple(int(part) for part in re.findall(r"\d+", AIRFLOW_VERSION)[:2])

#: ``context["task_state_store"]`` exists.
HAS_TASK_STATE_STORE: bool = _RELEASE >= (3, 3)
#: The triggerer calls ``BaseTrigger.on_kill`` when the deferred task is killed.
HAS_TRIGGER_ON_KILL: bool = _RELEASE >= (3, 3)
#: The scheduler starts a task with ``start_from_trigger`` in the triggerer.
HAS_START_FROM_TRIGGER: bool = _RELEASE >= (3, 3)
#: Provider info's ``conn-fields`` drive the connection form.
HAS_DECLARATIVE_CONN_FIELDS: bool = _RELEASE >= (3, 2)

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1: the SDK does not re-export the configuration yet
    from airflow.configuration import conf  # type: ignore[assignment]
try:
    from airflow.sdk.exceptions import AirflowSensorTimeout
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowSensorTimeout  # type: ignore[no-redef]

__all__ = [
    "AIRFLOW_VERSION",
    "HAS_DECLARATIVE_CONN_FIELDS",
    "HAS_START_FROM_TRIGGER",
    "HAS_TASK_STATE_STORE",
    "HAS_TRIGGER_ON_KILL",
    "AirflowSensorTimeout",
    "conf",
    "connection_form",
    "connection_form_widgets",
    "ui_field_behaviour",
    "warn_no_trigger_on_kill",
]


def warn_no_trigger_on_kill(log: logging.Logger | Any, cancel_on_kill: bool = True) -> None:
    """Say (once, as the task defers) what a kill while deferred cannot do on this Airflow."""
    if HAS_TRIGGER_ON_KILL or not cancel_on_kill:
        return
    log.warning(
        "Airflow %s has no trigger on_kill (Airflow 3.3 adds it): killing this task while it is "
        "deferred does not cancel the dbt Cloud run; the run is still cancelled at the timeout",
        AIRFLOW_VERSION,
    )


# --- the connection form on Airflow 3.1 ---------------------------------------------------------------


def ui_field_behaviour(connection_type: dict[str, Any]) -> dict[str, Any]:
    """``get_ui_field_behaviour()``'s answer from a provider-info connection type (3.1 only).

    Provider info spells the keys ``hidden-fields``; the hook method wants ``hidden_fields``, and
    Airflow 3.1's schema requires ``hidden_fields`` and ``relabeling`` even when empty.
    """
    behaviour = connection_type.get("ui-field-behaviour") or {}
    converted = {key.replace("-", "_"): value for key, value in behaviour.items()}
    return {"hidden_fields": [], "relabeling": {}, "placeholders": {}, **converted}


def connection_form_widgets(connection_type: dict[str, Any]) -> dict[str, Any]:
    """``get_connection_form_widgets()``'s answer from provider info ``conn-fields`` (3.1 only).

    Objects and numbers become text fields (the hooks parse JSON and numbers from strings). Empty on
    3.2+, where the form comes from ``conn-fields`` itself, and where wtforms is not importable.
    The hooks get it through :func:`connection_form`.
    """
    if HAS_DECLARATIVE_CONN_FIELDS:
        return {}
    try:
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, StringField
    except ImportError:
        return {}
    widgets: dict[str, Any] = {}
    for name, field in (connection_type.get("conn-fields") or {}).items():
        schema = field.get("schema") or {}
        types = schema.get("type")
        types = set(types) if isinstance(types, list) else {types}
        label = lazy_gettext(field.get("label", name))
        description = field.get("description", "")
        if "boolean" in types:
            widgets[name] = BooleanField(label, description=description, default=schema.get("default"))
        elif "integer" in types:
            widgets[name] = IntegerField(label, description=description, widget=BS3TextFieldWidget())
        else:
            widgets[name] = StringField(label, description=description, widget=BS3TextFieldWidget())
    return widgets


def connection_form(connection_type: dict[str, Any]) -> Callable[[type[T]], type[T]]:
    """Class decorator: the hook's ``get_connection_form_widgets``/``get_ui_field_behaviour`` from
    provider info's ``connection_type`` (used by Airflow 3.1's form; 3.2+ reads ``conn-fields``).

    A decorator, not a mixin: Airflow 3.1 reads these methods only from the hook class's own
    ``__dict__``, so they are set on each class itself.
    """

    def decorate(hook: type[T]) -> type[T]:
        def get_connection_form_widgets(cls: type) -> dict[str, Any]:
            return connection_form_widgets(connection_type)

        def get_ui_field_behaviour(cls: type) -> dict[str, Any]:
            return ui_field_behaviour(connection_type)

        hook.get_connection_form_widgets = classmethod(get_connection_form_widgets)  # type: ignore[attr-defined]
        hook.get_ui_field_behaviour = classmethod(get_ui_field_behaviour)  # type: ignore[attr-defined]
        return hook

    return decorate
