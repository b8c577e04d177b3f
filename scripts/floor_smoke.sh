#!/usr/bin/env bash
# The floors as a user installs them: a fresh venv with Airflow 3.1.8, dbt-core 1.8.9, dbt-duckdb 1.8.x
# and only the built wheel added. Checks `uv pip check`, then runs two DAGs under `airflow dags test`
# on Airflow's defaults: a DbtBuildOperator building the example project from a duckdb connection,
# a deferrable DbtCloudRunJobOperator against the dbt Cloud emulator, and the DbtTaskGroup example DAG
# (example_dags/dbt_task_group_duckdb.py: single_build, node tasks rescheduled until the producer runs).
#   bash scripts/floor_smoke.sh            (after `make wheel`; WORK=dir keeps the files there)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
UV=${UV:-$ROOT/.tools/bin/uv}
WORK=${WORK:-$(mktemp -d -t adp-floor-XXXX)}
VENV=$WORK/venv
WHEEL=$(ls "$ROOT"/dist/*.whl)
PINS=(${FLOOR_PINS:-apache-airflow==3.1.8 dbt-core==1.8.9 dbt-duckdb~=1.8.0})
echo "work dir: $WORK; pins: ${PINS[*]}"

[ -x "$VENV/bin/python" ] || "$UV" venv --quiet --python "$ROOT/.venv/bin/python" "$VENV"
"$UV" pip install --quiet --python "$VENV/bin/python" --overrides "$ROOT/scripts/uv-overrides.txt" \
	"${PINS[@]}" "$WHEEL[duckdb]"
"$UV" pip check --python "$VENV/bin/python"
"$UV" pip list --python "$VENV/bin/python" | grep -E '^(apache-airflow|apache-airflow-core|apache-airflow-task-sdk|dbt-core|dbt-duckdb|dbt-adapters|duckdb|airflow-dbt-provider) '

export AIRFLOW_HOME=$WORK/airflow
export AIRFLOW__CORE__DAGS_FOLDER=$WORK/dags
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export DO_NOT_TRACK=1
mkdir -p "$AIRFLOW__CORE__DAGS_FOLDER"
cat > "$AIRFLOW__CORE__DAGS_FOLDER/floor_smoke.py" <<'EOF'
from datetime import datetime
from importlib import resources

from airflow.sdk import DAG

from airflow_dbt_provider.operators.dbt import DbtBuildOperator, DbtSeedOperator
from airflow_dbt_provider.operators.dbt_cloud import DbtCloudRunJobOperator

PROJECT = str(resources.files("airflow_dbt_provider.testing") / "jaffle_shop")

with DAG("floor_dbt_build", schedule=None, start_date=datetime(2026, 1, 1)):
    seed = DbtSeedOperator(task_id="seed", project_dir=PROJECT, profile_conn_id="warehouse")
    build = DbtBuildOperator(
        task_id="build", project_dir=PROJECT, profile_conn_id="warehouse", exclude="resource_type:seed"
    )
    seed >> build

with DAG("floor_dbt_cloud", schedule=None, start_date=datetime(2026, 1, 1)):
    DbtCloudRunJobOperator(
        task_id="run_job",
        project_name="jaffle_shop",
        environment_name="Production",
        job_name="jaffle_shop build",
        deferrable=True,
        check_interval=2,
        timeout=600,
    )
EOF
cp "$ROOT/example_dags/dbt_task_group_duckdb.py" "$AIRFLOW__CORE__DAGS_FOLDER/"
export JAFFLE_SHOP_TASK_GROUP_DUCKDB_PATH=$WORK/task_group.duckdb
"$VENV/bin/airflow" db migrate > "$WORK/db-migrate.log" 2>&1

"$VENV/bin/dbt-cloud-emulator" --port 0 --cert-out "$WORK/ca.pem" --speed 20 > "$WORK/emulator.log" 2>&1 &
EMULATOR=$!
trap 'kill $EMULATOR 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do grep -q '^listening on' "$WORK/emulator.log" && break; sleep 0.5; done
URL=$(sed -n 's/^listening on //p' "$WORK/emulator.log")
[ -n "$URL" ] || { cat "$WORK/emulator.log"; exit 1; }
export AIRFLOW_CONN_DBT_CLOUD_API_DEFAULT="{\"conn_type\": \"dbt_cloud_api\", \"login\": \"10001\", \"password\": \"emulator-token\", \"host\": \"$URL\", \"extra\": {\"ca_bundle\": \"$WORK/ca.pem\"}}"
export AIRFLOW_CONN_WAREHOUSE="{\"conn_type\": \"duckdb\", \"host\": \"$WORK/warehouse.duckdb\", \"schema\": \"main\"}"

status=0
for dag in floor_dbt_build floor_dbt_cloud dbt_task_group_duckdb; do
	"$VENV/bin/airflow" dags test "$dag" > "$WORK/$dag.log" 2>&1 || true
	if grep -q "DagRun Finished: dag_id=$dag,.* state=success" "$WORK/$dag.log"; then
		echo "$dag: success"
	else
		echo "$dag: FAILED (see $WORK/$dag.log)"; grep -E "ERROR|Error|state=" "$WORK/$dag.log" | tail -20; status=1
	fi
done
grep -h "defer\|Deferring\|TaskDeferred\|trigger" "$WORK/floor_dbt_cloud.log" | grep -v "^\s*$" | head -3 || true
"$VENV/bin/python" - "$WORK/warehouse.duckdb" <<'EOF'
import sys, duckdb
with duckdb.connect(sys.argv[1], read_only=True) as con:
    print("warehouse tables:", sorted(r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()))
    print("customers rows:", con.execute("select count(*) from main.customers").fetchone()[0])
EOF
exit $status
