"""The hostname a Celery worker of the end-to-end deployment reports for its task instances.

Both workers run on this one machine, so Airflow's default (the machine's FQDN) would name them
alike; ``[core] hostname_callable`` points here in each worker's environment (this directory is on
its ``PYTHONPATH``), and ``$ADP_WORKER_NAME`` says which worker it is. Task instances then show
``hostname == "worker_a"`` or ``"worker_b"``, as they would show two machines' names.
"""

from __future__ import annotations

import os


def hostname() -> str:
    return os.environ["ADP_WORKER_NAME"]
