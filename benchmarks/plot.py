"""The triggerer scaling curve as a PNG: ``python -m benchmarks.plot RESULTS.json OUT.png``.

Runs in ``.bench/venv`` (matplotlib is a benchmark-only dependency, never the project's).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

PANELS = (
    ("cpu_ms_per_poll", "CPU per poll (ms)"),
    ("max_stall_ms", "max event-loop stall (ms)"),
    ("peak_rss_mb", "peak RSS (MiB)"),
    ("wall_s", "wall time to drain (s)"),
)
STYLE = {"ours": ("tab:blue", "o"), "official": ("tab:orange", "s")}


def plot(triggers: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.6), constrained_layout=True)
    for ax, (metric, title) in zip(axes, PANELS, strict=True):
        for impl, (color, marker) in STYLE.items():
            for scenario, dashes in (("clean", "-"), ("faults", "--")):
                cases = sorted(
                    (
                        c
                        for c in triggers["cases"]
                        if c["impl"] == impl and c["scenario"] == scenario and c.get(metric)
                    ),
                    key=lambda c: c["n"],
                )
                if not cases:
                    continue
                xs = [c["n"] for c in cases]
                med = [c[metric]["median"] for c in cases]
                err = [[m - c[metric]["min"] for m, c in zip(med, cases, strict=True)],
                       [c[metric]["max"] - m for m, c in zip(med, cases, strict=True)]]  # fmt: skip
                ax.errorbar(xs, med, yerr=err, color=color, marker=marker, linestyle=dashes, capsize=3,
                            mfc="none" if scenario == "faults" else color,
                            label=f"{impl} ({scenario})")  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("concurrent deferred runs (N)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Triggerer scale: DbtCloudRunTrigger (ours) vs DbtCloudRunJobTrigger (official)")
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    if "triggers" not in results:
        raise SystemExit(f"{args.results} has no triggerer results to plot")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(results["triggers"], args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
