"""The dermatology-rankings release in ../shared/data: every case imported, aggregated and covered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict

import pytest

from conftest import REPO_ROOT, SHARED_DATA  # tests/ is on sys.path under pytest
from dermkit.data.importers import run_import
from dermkit.data.table import Case, read_cases
from dermkit.ontology import UnknownTermError, default_ontology

pytestmark = pytest.mark.realdata

RELEASE = SHARED_DATA / "dermatology-rankings"


@pytest.fixture(scope="module")
def release() -> tuple[list[str], list]:
    if not (RELEASE / "dermatology_selectors.json").exists():
        pytest.skip(f"real data {RELEASE} is absent (tests read ../shared/data beside the checkout)")
    names = (RELEASE / "dermatology_conditions.txt").read_text().splitlines()
    return names, json.loads((RELEASE / "dermatology_selectors.json").read_text())


@pytest.fixture(scope="module")
def imported(release: tuple[list[str], list], tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    out = tmp_path_factory.mktemp("rankings") / "table"
    result = run_import("dermatology-rankings", RELEASE, out, check_images=False)
    assert (result.cases, result.problems) == (1947, [])
    return read_cases(out)


def plain_inverse_rank(readers: list, key) -> dict:
    """1/(1+g) for a condition in rank group g, summed over readers, normalised (keyed by ``key``;
    a reader naming two names of one key counts the better rank)."""
    totals: dict = defaultdict(float)
    for reader in readers:
        best: dict = {}
        for g, group in enumerate(reader):
            for index in group:
                best[key(index)] = max(best.get(key(index), 0.0), 1 / (1 + g))
        for k, weight in best.items():
            totals[k] += weight
    return {k: weight / sum(totals.values()) for k, weight in totals.items()}


def test_every_case_is_imported_with_its_readers(release: tuple[list[str], list], imported: list[Case]) -> None:
    names, cases = release
    assert len(cases) == len(imported) == 1947 and len(names) == 419
    assert [c.case_id for c in imported] == [f"dermatology-rankings:{i}" for i in range(1947)]
    for case, readers in zip(imported, cases):
        assert case.extra["readers"] == [[[names[i] for i in group] for group in reader] for reader in readers]
    assert {c.licence for c in imported} == {"Apache-2.0"}
    assert sum(any(len(g) > 1 for r in readers for g in r) for readers in cases) > 1000  # ties are common


def test_aggregation_equals_the_plain_inverse_rank_rule(release: tuple[list[str], list], imported: list[Case]) -> None:
    names, cases = release
    ontology = default_ontology()

    def condition_id(index: int) -> str:
        try:
            return ontology.map_label("dermatology-rankings", names[index])
        except UnknownTermError:
            return f"other:{names[index]}"  # unmapped names are distinct conditions

    for case, readers in zip(imported, cases):
        expected = plain_inverse_rank(readers, lambda index: names[index])
        got = case.extra["release_differential"]  # JSON in the table: full float64 precision
        assert got.keys() == expected.keys()
        assert all(abs(got[name] - expected[name]) <= 1e-12 for name in expected), case.case_id
        by_id = plain_inverse_rank(readers, condition_id)
        folded: dict = defaultdict(float)
        for key, weight in by_id.items():
            folded["unknown_or_other" if key.startswith("other:") else key] += weight
        assert case.differential == pytest.approx(folded, abs=1e-6), case.case_id  # float32 in Parquet
        assert case.extra["unmapped"] == pytest.approx(
            {key.removeprefix("other:"): w for key, w in by_id.items() if key.startswith("other:")}, abs=1e-12)


def test_coverage_command_on_the_release_matches_the_table_and_the_docs(imported: list[Case]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    run = subprocess.run([sys.executable, "-m", "dermkit.cli", "ontology", "coverage", str(RELEASE)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("unmapped (")))
    unmapped = [line.strip().rsplit("  ", 1)[0] for line in lines[header + 1:]]
    names = (RELEASE / "dermatology_conditions.txt").read_text().splitlines()
    ontology = default_ontology()
    for name in names:  # listed exactly when it does not map
        try:
            ontology.map_label("dermatology-rankings", name)
            assert name not in unmapped
        except UnknownTermError:
            assert name in unmapped
    assert lines[0].startswith(f"{419 - len(unmapped)}/419 condition names map to the ontology")
    assert "Healthy" in unmapped and "Psoriasis" not in unmapped
    # The mass figure is the table's own: one minus the mean weight of unmapped names per case.
    mass = 1 - sum(sum(c.extra["unmapped"].values()) for c in imported) / len(imported)
    assert f"differential mass on mapped names: {mass:.1%} (mean over labelled cases)" in lines
    # docs/ontology.md quotes the command's summary lines verbatim.
    docs = (REPO_ROOT / "docs" / "ontology.md").read_text()
    for line in lines[:header]:
        assert line in docs, line
