"""The task of one dbt node in a :class:`~airflow_dbt_provider.task_groups.dbt.DbtTaskGroup`.

:class:`DbtNodeOperator` is a :class:`DbtBuildOperator` whose selection is one node: it runs
``dbt build --select <node> --indirect-selection=cautious``, so the node's single-parent tests run
with it and nothing else does. Everything else — the profile, env, vars, parse cache, ``dbt retry``
on an Airflow retry, the outcome mapping — is the build operator's, so a node task takes exactly
the operators' arguments.
"""

from __future__ import annotations

from typing import Any

from airflow_dbt_provider.operators.dbt import DbtBuildOperator


class DbtNodeOperator(DbtBuildOperator):
    """``dbt build`` of one node and its single-parent tests.

    :param unique_id: the node's dbt unique id (``model.jaffle_shop.orders``).
    :param node_select: the ``--select`` value that selects exactly that node.
    :param exclude: passed on, so tests the group's ``exclude`` left out stay out.
    """

    template_fields = DbtBuildOperator.template_fields
    ui_color = "#ff8a6b"

    def __init__(self, *, unique_id: str, node_select: str, **kwargs: Any) -> None:
        flags = {**(kwargs.pop("dbt_flags", None) or {}), "indirect_selection": "cautious"}
        kwargs.pop("select", None)
        kwargs.pop("selector", None)  # a YAML selector would widen the node's selection
        super().__init__(select=node_select, dbt_flags=flags, **kwargs)
        self.unique_id = unique_id
