"""``dermkit demo``: the main job end to end on the real sample, or on synthetic data without it.

Each step is a call into the packages and writes its own artefact under ``--out``, so any step
can be re-run alone from the CLI on what the demo wrote.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dermkit.core.atomic import atomic_write_text
from dermkit.data.importers import run_import
from dermkit.data.leaks import check_table
from dermkit.data.splits import split_table
from dermkit.data.stats import plot_stats, stats_for_table
from dermkit.data.synthetic import write_synthetic_ham


@dataclass(frozen=True)
class DemoSource:
    """A dataset the demo imports: importer name, where its files are, how to split it."""

    name: str
    importer: str
    path: Path
    group_by: str


def default_data_root() -> Path:
    """``$DERMKIT_DATA``, else ``../shared/data`` beside the working directory."""
    return Path(os.environ.get("DERMKIT_DATA", "../shared/data"))


def find_sources(data_root: Path | None, out: Path) -> tuple[list[DemoSource], bool]:
    """The real sample's datasets when present, else a synthetic HAM10000-layout set (written now)."""
    real = []
    if data_root is not None:
        for name, group_by in (("pad-ufes-20", "patient"), ("ham10000", "lesion")):
            if (data_root / name / "metadata.csv").exists():
                real.append(DemoSource(name, name, data_root / name, group_by))
    if real:
        return real, True
    synthetic = write_synthetic_ham(out / "synthetic-ham10000")
    return [DemoSource("synthetic-ham10000", "ham10000", synthetic, "lesion")], False


def prepare_table(source: DemoSource, out: Path, seed: int) -> dict[str, Any]:
    """Import, split without leakage, check the split, describe it (stats JSON + plots)."""
    table_dir = out / "tables" / source.name
    imported = run_import(source.importer, source.path, table_dir)
    split = split_table(table_dir, by=source.group_by, val=0.15, test=0.15, seed=seed)
    leaks = check_table(table_dir)
    stats = stats_for_table(table_dir)
    stats_dir = out / "stats" / source.name
    plots = plot_stats(stats, stats_dir)
    atomic_write_text(stats_dir / "stats.json", json.dumps(stats, indent=2) + "\n")
    return {
        "table": str(table_dir),
        "cases": imported.cases,
        "rejected": len(imported.problems),
        "split": split["counts"],
        "leaks": leaks.as_dict() if not leaks.clean else "none",
        "plots": [str(p) for p in plots],
        "stats": stats,
    }


def run_demo(data_root: Path | None, out: Path, seed: int = 0) -> dict[str, Any]:
    """Run every demo step and write ``summary.json`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    sources, real = find_sources(data_root, out)
    summary: dict[str, Any] = {"data": "real sample" if real else "synthetic", "tables": {}}
    for source in sources:
        summary["tables"][source.name] = prepare_table(source, out, seed)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary
