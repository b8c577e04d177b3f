# The README's two commands are `make demo` and `make test`; `make bench` runs the benchmarks.
# Each target sets up what it needs from nothing: a pinned uv in .tools/, then .venv/ from uv.lock.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_LINK_MODE := copy
export UV_COMPILE_BYTECODE := 1
# Nothing phones home: dbt's anonymous usage tracking stays off in everything make runs.
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := False

.PHONY: help demo test test-min test-matrix bench lint typecheck install-dev install-demo wheel clean

help:
	@echo "make demo   set up .venv and run the example DAGs end to end on embedded defaults"
	@echo "make test   set up .venv with .[dev], run ruff, mypy and pytest"
	@echo "make bench  run the benchmarks and regenerate BENCHMARKS.md"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

# The package goes in from its wheel, not editable, so missing package data, py.typed or entry
# points break the tests rather than a user's install.
wheel: $(UV)
	rm -rf dist
	$(UV) build --wheel --out-dir dist --quiet

install-dev: $(UV) wheel
	$(UV) sync --locked --extra dev --extra official --no-install-project --quiet
	$(UV) pip install --python $(VENV)/bin/python --no-deps --reinstall --quiet dist/*.whl

install-demo: $(UV) wheel
	$(UV) sync --locked --extra dbt --extra duckdb --no-install-project --quiet
	$(UV) pip install --python $(VENV)/bin/python --no-deps --reinstall --quiet dist/*.whl

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install-dev
	$(VENV)/bin/mypy airflow_dbt_provider benchmarks

test: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy airflow_dbt_provider benchmarks
	bash scripts/ensure_system_deps.sh
	# Two workers for everything but the end-to-end suite, which starts its own Airflow deployment
	# (scheduler, triggerer, ...) and wants the machine's cores to itself.
	ADP_REQUIRE_WHEEL=1 $(VENV)/bin/pytest -n 2 --dist loadfile -m "not e2e" $(PYTEST_ARGS)
	ADP_REQUIRE_WHEEL=1 $(VENV)/bin/pytest -m e2e $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-min

# The minimum-versions lane: every declared floor installed exactly (scripts/min_requirements.py) —
# Airflow 3.1.8, dbt-core 1.8.9 with its adapters — running the unit, cloud, hook, core, operator and
# task-group suites (which include one dag.test() of each example DAG).
MIN_VENV := .venv-min
MIN_SUITES := tests/unit tests/cloud tests/hooks tests/assets tests/core tests/operators_dbt tests/operators_cloud tests/task_groups
# The minimum lane also runs the object-storage suite (on Airflow 3.1 retry_from_failure keeps its
# state in artifacts_dir, there a URL); the matrix does not (a few minutes per cell).
MIN_LANE_SUITES := $(MIN_SUITES) tests/object_storage
test-min: $(UV) wheel
	$(VENV)/bin/python scripts/min_requirements.py > dist/min-requirements.txt
	[ -x $(MIN_VENV)/bin/python ] || $(UV) venv --quiet --python $(VENV)/bin/python $(MIN_VENV)
	$(UV) pip install --python $(MIN_VENV)/bin/python --quiet --overrides scripts/uv-overrides.txt \
		--reinstall-package airflow-dbt-provider -r dist/min-requirements.txt "$$(ls dist/*.whl)[dev]"
	ADP_REQUIRE_WHEEL=1 $(MIN_VENV)/bin/pytest -q -p no:cacheprovider -n 2 --dist loadfile -m "not e2e" \
		$(MIN_LANE_SUITES)

# Every Airflow minor x dbt-core minor we support, each in .venv-matrix/<cell>, running test-min's
# suites; writes docs/compatibility.md. Not in CI (<= 90 min on 2 cores). CELLS="3.1x1.8 3.3x1.12"
# runs only those cells (the others keep their last measurement).
test-matrix: $(UV) wheel
	$(VENV)/bin/python scripts/test_matrix.py --uv $(UV) $(if $(CELLS),--cells $(CELLS)) -- $(MIN_SUITES)

demo: install-demo
	DEMO_KEEP_RUNNING=$(if $(KEEP),1,0) $(VENV)/bin/python scripts/demo.py

bench: install-dev
	$(VENV)/bin/python -m benchmarks.run

clean:
	rm -rf $(VENV) $(TOOLS) dist .demo .bench .venv-*
