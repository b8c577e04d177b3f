"""One long task with a retry: the target for "the worker dies" tests.

``nap`` logs its try number and sleeps ``conf["seconds"]`` (default 300). A test SIGKILLs the
task process by the pid the API reports; the supervisor then fails the try and Airflow retries
it after one second, which the second try can show by returning its try number.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from airflow.sdk import dag, task

log = logging.getLogger(__name__)


@dag(dag_id="e2e_sleeper", schedule=None, catchup=False, tags=["e2e"])
def e2e_sleeper() -> None:
    @task(retries=1, retry_delay=dt.timedelta(seconds=1))
    def nap(**context: Any) -> int:
        try_number = int(context["ti"].try_number)
        seconds = float(context["dag_run"].conf.get("seconds", 300)) if try_number == 1 else 0.0
        log.info("try %d: sleeping %.0f s", try_number, seconds)
        time.sleep(seconds)
        return try_number

    nap()


e2e_sleeper()
