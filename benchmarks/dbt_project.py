"""Generated dbt projects of N models on DuckDB, the workload of the local dbt benchmark.

The shape is a tree of fan-out 3 over one seed (``m_0000`` reads the seed, ``m_i`` reads
``m_{(i-1)//3}``), so ``dbt build`` has both depth and parallel branches, and every 10th model has
a ``not_null`` test so ``build`` runs tests too. All models are views: the benchmark measures the
orchestration around dbt, not DuckDB.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

PROFILE = "bench"
TARGET = "dev"
SEED_ROWS = 100
FAN_OUT = 3
TESTED_EVERY = 10
THREADS = 4


@dataclass(frozen=True)
class BenchProject:
    project_dir: Path
    profiles_dir: Path
    n_models: int

    @property
    def one_model(self) -> str:
        """The model ``dbt run -s`` selects: the last one, a leaf at the bottom of the tree."""
        return model_name(self.n_models - 1)


def model_name(index: int) -> str:
    return f"m_{index:04d}"


def generate_project(root: Path, n_models: int) -> BenchProject:
    """Write the project under ``root/models_<n>`` unless an identical one is already there."""
    if n_models < 1:
        raise ValueError(f"a benchmark project needs at least one model, got n_models={n_models}")
    project_dir = root / f"models_{n_models}"
    files = _project_files(project_dir, n_models)
    fingerprint = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()
    marker = project_dir / ".generated"
    if not (marker.exists() and marker.read_text() == fingerprint):
        shutil.rmtree(project_dir, ignore_errors=True)
        for relative, content in files.items():
            path = project_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        marker.write_text(fingerprint)
    return BenchProject(project_dir=project_dir, profiles_dir=project_dir / "profiles", n_models=n_models)


def _project_files(project_dir: Path, n_models: int) -> dict[str, str]:
    files = {
        "dbt_project.yml": (
            f"name: bench_{n_models}\nversion: '1.0'\nconfig-version: 2\nprofile: {PROFILE}\n"
            "models:\n  +materialized: view\n"
        ),
        "profiles/profiles.yml": (
            f"{PROFILE}:\n  target: {TARGET}\n  outputs:\n    {TARGET}:\n      type: duckdb\n"
            f"      path: {project_dir / 'warehouse.duckdb'}\n      threads: {THREADS}\n"
        ),
        "seeds/raw_events.csv": "id,category,value\n"
        + "".join(f"{i},{'abc'[i % 3]},{i * 7 % 101}\n" for i in range(SEED_ROWS)),
    }
    files[f"models/{model_name(0)}.sql"] = "select id, category, value from {{ ref('raw_events') }}\n"
    for i in range(1, n_models):
        parent = model_name((i - 1) // FAN_OUT)
        files[f"models/{model_name(i)}.sql"] = (
            f"select id, category, value + {i} as value from {{{{ ref('{parent}') }}}}\n"
        )
    tested = [model_name(i) for i in range(0, n_models, TESTED_EVERY)]
    files["models/schema.yml"] = "version: 2\nmodels:\n" + "".join(
        f"  - name: {name}\n    columns:\n      - name: id\n        data_tests: [not_null]\n"
        for name in tested
    )
    return files
