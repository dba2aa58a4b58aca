"""The real sample in ../shared/data as a case table, shared by the curation benchmarks.

Benchmarks need real images and real model embeddings; they import HAM10000 into a temporary
case table (images stay where they are) and exit with a clear message where the data is absent.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd

from dermkit.data.importers import run_import
from dermkit.data.table import read_table

SHARED_DATA = Path(os.environ.get("DERMKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def shared_source(name: str, marker: str) -> Path:
    """``../shared/data/NAME``, or exit with the reason when its ``marker`` file (or folder) is absent."""
    source = SHARED_DATA / name
    if not (source / marker).exists():
        sys.exit(f"real data {source} is absent; this benchmark needs ../shared/data beside the checkout")
    return source


def ham_table(work_dir: Path, limit: int | None = None) -> tuple[Path, pd.DataFrame]:
    """Import HAM10000 into ``work_dir/ham`` (no image check) and return its path and first ``limit`` rows."""
    source = shared_source("ham10000", "metadata.csv")
    table_dir = work_dir / "ham"
    run_import("ham10000", source, table_dir, check_images=False)
    frame = read_table(table_dir)
    return table_dir, frame if limit is None else frame.iloc[:limit].reset_index(drop=True)
