"""Real data: import PAD-UFES-20 and HAM10000, split without leaks, and count as the README does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dermkit.cli import main
from dermkit.data.importers import run_import
from dermkit.data.table import read_table
from dermkit.ontology import default_ontology

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

# Label counts as stated in ../shared/data/README.md, in each source's own codes.
README_COUNTS = {
    "pad-ufes-20": {"BCC": 108, "NEV": 126, "SEK": 78, "ACK": 63, "MEL": 29, "SCC": 11},
    "ham10000": {"nv": 4323, "bkl": 583, "mel": 491, "bcc": 264, "akiec": 183, "vasc": 80, "df": 60},
}


@pytest.mark.parametrize(("source", "fixture", "by"), [
    ("pad-ufes-20", "pad_ufes_dir", "patient"),
    ("ham10000", "ham_dir", "lesion"),  # HAM10000 has no patient id
])
def test_split_is_leak_free_and_stats_match_readme(
    source: str, fixture: str, by: str, request: pytest.FixtureRequest, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir: Path = request.getfixturevalue(fixture)
    table = tmp_path / source
    run_import(source, data_dir, table, check_images=False)

    assert main(["data", "split", str(table), "--by", by, "--seed", "0", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)["counts"]
    for label in read_table(table)["diagnosis_id"].unique():
        assert all(counts[split].get(label, 0) > 0 for split in ("train", "val", "test")), (label, counts)

    assert main(["data", "check-leaks", str(table), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clean"] and report["images"] == [] and report["unsplit"] == 0

    assert main(["data", "stats", str(table), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    ontology = default_ontology()
    expected = {ontology.map_label(source, code): n for code, n in README_COUNTS[source].items()}
    assert stats["counts"]["diagnosis_id"] == expected
    assert stats["cases"] == stats["images"] == sum(expected.values())
    assert sum(stats["counts"]["split"].values()) == stats["cases"]
