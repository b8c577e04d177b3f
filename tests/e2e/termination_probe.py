"""Not part of the suite (no ``test_`` prefix): ``test_termination.py`` runs this file in a child
pytest, waits until it reports the shared e2e deployment up, and ends that pytest with a signal.

The test below only holds the session's ``airflow_deployment`` fixture (PostgreSQL server plus
api-server, scheduler, dag-processor and triggerer) open until the signal arrives; what is under
test is what pytest and the harness do then.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from support.airflow_deployment import AirflowDeployment

#: File the probe writes once the deployment is up (its api-server URL).
READY_ENV = "ADP_TERMINATION_PROBE_READY"


def test_hold_the_deployment_until_signalled(airflow_deployment: AirflowDeployment) -> None:
    Path(os.environ[READY_ENV]).write_text(json.dumps({"base_url": airflow_deployment.base_url}))
    while True:  # until the parent's signal ends the session
        time.sleep(0.2)
