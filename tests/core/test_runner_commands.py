"""Every dbt command through the runner, on a read-only copy of the example project (real dbt, DuckDB).

The module builds the project once (``built``) and the tests run further commands on it, so the
parse is shared: the runner reuses its manifest for every invocation.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.dbt_projects import BUILD_NODES, MODEL_NODES, SEED_NODES, make_runner, recording

from airflow_dbt_provider.core import DbtResult, DbtRunner
from airflow_dbt_provider.core.dbt_versions import installed_minor
from airflow_dbt_provider.core.runner import RUNS_SELECTED_NODES


@dataclass
class Built:
    runner: DbtRunner
    warehouse: Path
    seed: DbtResult
    build: DbtResult
    log_lines: list[str]


@pytest.fixture(scope="module")
def built(readonly_project: Path, warehouse: Path, cache_dir: Path) -> Built:
    """Seed then build the example project with one runner, recording dbt's log lines."""
    runner = make_runner(readonly_project, warehouse, cache_dir)
    with recording(logging.getLogger("tests.dbt")) as log:
        seed = runner.invoke(["seed"])
        build = runner.invoke("build", capture=["run_results.json"])
    return Built(runner, warehouse, seed, build, log.lines)


def test_seed_and_build_report_every_node(built: Built) -> None:
    assert built.seed.success
    assert built.seed.counts == {"success": SEED_NODES}
    assert built.build.success
    assert len(built.build.nodes) == BUILD_NODES
    assert built.build.counts == {"pass": 13, "success": BUILD_NODES - 13}
    assert not built.build.failed_nodes
    customers = next(n for n in built.build.nodes if n.unique_id == "model.jaffle_shop.customers")
    assert customers.status == "success"
    assert customers.started_at is not None
    assert customers.completed_at is not None
    assert customers.relation_name is not None
    assert "customers" in customers.relation_name
    seeds = {n.unique_id: n.rows_affected for n in built.seed.nodes}
    assert seeds["seed.jaffle_shop.raw_customers"] == 10
    run_results = json.loads(built.build.captured["run_results.json"])
    assert len(run_results["results"]) == BUILD_NODES
    summary = built.build.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["nodes"] == BUILD_NODES
    assert summary["failed_nodes"] == []


def test_progress_lines_appear_once_each_without_colour(built: Built) -> None:
    lines = built.log_lines
    progress = [
        line for line in lines if re.match(r"\d+ of 22 OK created sql table model main\.customers", line)
    ]
    assert len(progress) == 1, progress
    assert sum(1 for line in lines if line.startswith("Done. PASS=22")) == 1
    assert sum(1 for line in lines if line.startswith("Done. PASS=3")) == 1
    assert not any("\x1b[" in line for line in lines)
    assert all("\n" not in line for line in lines)


def test_read_only_commands(built: Built) -> None:
    runner = built.runner
    with recording(logging.getLogger("tests.dbt")) as log:
        listed = runner.invoke(["ls"], resource_types=["model"], output="name")
        compiled = runner.invoke(["compile"], select="customers")
        shown = runner.invoke(["show", "--limit", "3"], select=["customers"])
        operation = runner.invoke(["run-operation", "row_count", "--args", "{model: customers}"])
        freshness = runner.invoke(["source", "freshness"])
        debug = runner.invoke(["debug"])
    assert listed.success
    assert sorted(listed.output) == ["customers", "orders", "stg_customers", "stg_orders", "stg_payments"]
    assert compiled.success
    assert "model.jaffle_shop.customers" in {n.unique_id for n in compiled.nodes}
    assert shown.success
    assert any("customer_id" in line for line in log.lines), "dbt show printed no preview"
    assert operation.success
    assert "row_count customers=10" in log.lines
    assert freshness.success
    assert debug.success
    assert debug.output is True


def test_snapshot_test_docs_clone_and_retry(built: Built, tmp_path: Path) -> None:
    runner = built.runner
    snapshot = runner.invoke(["snapshot"])
    assert snapshot.success
    assert snapshot.counts == {"success": 1}
    tested = runner.invoke(["test"], select="customers")
    assert tested.success
    assert set(tested.counts) == {"pass"}
    kept = make_runner(
        runner.project_dir, built.warehouse, runner.cache.root, artifacts_dir=tmp_path / "state"
    )
    docs = kept.invoke(["docs", "generate"])
    assert docs.success
    assert {"catalog.json", "manifest.json", "index.html", "dbt.log"} <= set(docs.artifacts)
    catalog = json.loads((tmp_path / "state" / "catalog.json").read_text())
    assert "model.jaffle_shop.customers" in catalog["nodes"]
    ran = kept.invoke(["run"], select="stg_customers")
    assert ran.success
    assert (tmp_path / "state" / "run_results.json").is_file()
    cloned = runner.invoke(["clone", "--state", str(tmp_path / "state")], select="stg_customers")
    assert cloned.success
    assert [n.unique_id for n in cloned.nodes] == ["model.jaffle_shop.stg_customers"]
    retried = runner.invoke(["retry", "--state", str(tmp_path / "state")])
    assert retried.success


def test_invocation_restores_process_state_and_releases_duckdb(built: Built) -> None:
    cwd, environ = os.getcwd(), dict(os.environ)
    result = built.runner.invoke(["run"], select="customers")
    assert result.success
    assert os.getcwd() == cwd
    assert dict(os.environ) == environ
    assert "JAFFLE_SHOP_DUCKDB_PATH" not in os.environ
    # Another process can open the DuckDB file read-write right away: the runner released it.
    check = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
        "print(con.execute('select count(*) from main.customers').fetchone()[0])"
    )
    opened = subprocess.run(
        [sys.executable, "-c", check, str(built.warehouse)], capture_output=True, text=True, timeout=120
    )
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.strip() == "10"


def test_a_run_opens_no_outbound_connection(built: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def guarded_connect(sock: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"test blocked an outbound connection to {address!r}")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    result = built.runner.invoke(["run"], select=["stg_orders", "orders"])
    assert result.success
    assert result.counts == {"success": 2}
    assert attempts == []
    # The guard itself works: a connection to a non-loopback address is recorded.
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("192.0.2.1", 9), timeout=1)
    assert attempts == [("192.0.2.1", 9)]


def test_manifest_is_parsed_once_and_reused(built: Built) -> None:
    runner = built.runner
    manifest = runner._manifest
    assert manifest is not None
    assert runner.invoke(["ls"], select="orders").success
    assert runner._manifest is manifest
    assert len(runner.invoke(["run"], select="staging").nodes) == MODEL_NODES - 2
    assert runner._manifest is manifest


def test_an_empty_selection_is_flagged_with_one_warning_by_each_command_that_runs_nodes(
    built: Built, tmp_path: Path
) -> None:
    """dbt succeeds having done nothing; the result says so and the log says it once."""
    compiled = built.runner.invoke(["compile"], select=["stg_orders"], capture=["manifest.json"])
    assert compiled.success
    assert not compiled.empty_selection
    (tmp_path / "manifest.json").write_bytes(compiled.captured["manifest.json"])  # clone's --state
    with recording(logging.getLogger("tests.dbt")) as log:
        for command in sorted(RUNS_SELECTED_NODES):
            if command == "docs generate" and (installed_minor() or (0, 0)) < (1, 9):
                continue  # dbt-core 1.8 itself fails writing an empty catalog ("1 failure while writing")
            log.clear()
            args = [*command.split(), *(["--state", str(tmp_path)] if command == "clone" else [])]
            result = built.runner.invoke(args, select=["no_such_model"])
            assert result.success, (command, result.error_messages)
            assert result.empty_selection, command
            assert result.counts == {}
            warnings = [r for r in log.records if "selection matched no nodes" in r.getMessage()]
            assert [(r.levelname, r.getMessage()) for r in warnings] == [
                ("WARNING", f"dbt {command}: the selection matched no nodes; nothing ran")
            ]
        log.clear()
        listed = built.runner.invoke(["ls"], select=["no_such_model"])  # ls only lists: not flagged
    assert listed.success
    assert not listed.empty_selection
    assert not [line for line in log.lines if "selection matched no nodes" in line]
