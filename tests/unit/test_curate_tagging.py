"""Caption tagging at scale: agreement with the ontology tagger, accuracy, malformed captions, tables."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.importorskip("ahocorasick")

from dermkit.cli import main
from dermkit.curate.caption_gen import CaptionGenerator
from dermkit.curate.tag_scoring import labelled_from_generated, read_labelled, score_tags
from dermkit.curate.tagging import TAGS_FILE, CaptionTagger, normalize_caption, tag_captions, tag_table
from dermkit.data.table import Case, write_table
from dermkit.ontology import tag_text
from dermkit.ontology.tagger import VOCABULARIES

LABELLED = Path(__file__).resolve().parents[1] / "data" / "caption_tags_labelled.jsonl"


@pytest.fixture(scope="module")
def tagger() -> CaptionTagger:
    return CaptionTagger()


@pytest.fixture(scope="module")
def labelled() -> list[dict]:
    return read_labelled(LABELLED)


def test_labelled_set_is_large_enough(labelled: list[dict]) -> None:
    assert len(labelled) >= 200


def test_agrees_with_ontology_tagger(tagger: CaptionTagger, labelled: list[dict]) -> None:
    texts = [row["text"] for row in labelled] + [g.text for g in CaptionGenerator(seed=3).captions(300)]
    for text in texts:
        ours, reference = tagger.tag(text), tag_text(text)
        for name in (*VOCABULARIES, "fitzpatrick", "monk", "negated"):
            assert getattr(ours, name) == getattr(reference, name), (text, name)


def test_precision_and_recall_on_hand_labelled_captions(tagger: CaptionTagger, labelled: list[dict]) -> None:
    score = score_tags([tagger.tag(row["text"]) for row in labelled], labelled)
    assert score.precision >= 0.93 and score.recall >= 0.96
    assert score.negation_recall >= 0.9 and score.negation_precision >= 0.75
    assert score.age_accuracy >= 0.98 and score.sex_accuracy >= 0.98 and score.fitzpatrick_accuracy >= 0.98


def test_generated_captions_are_tagged_as_generated(tagger: CaptionTagger) -> None:
    generated = list(CaptionGenerator(seed=1).captions(500))
    score = score_tags([tagger.tag(g.text) for g in generated], labelled_from_generated(generated))
    assert score.precision > 0.98 and score.recall > 0.98 and score.negation_recall == 1.0


def test_generator_is_seeded() -> None:
    first = [g.text for g in CaptionGenerator(seed=5).captions(20)]
    assert first == [g.text for g in CaptionGenerator(seed=5).captions(20)]
    assert first != [g.text for g in CaptionGenerator(seed=6).captions(20)]


def test_most_specific_condition_implies_ancestors_and_variants_match(tagger: CaptionTagger) -> None:
    tags = tagger.tag("Superficial-spreading melanomas and seborrhoeic keratoses; no naevi")
    assert tags.conditions == ("superficial_spreading_melanoma", "seborrheic_keratosis")
    assert tags.condition_ancestors[:2] == ("melanoma", "melanocytic_neoplasm")
    assert "melanoma" not in tags.conditions
    assert tags.negated == {"conditions": ("melanocytic_nevus",)}


@pytest.mark.parametrize(("text", "age", "sex"), [
    ("a 45-year-old woman", 45.0, "female"),
    ("Patient aged 70, male", 70.0, "male"),
    ("in his sixties", 65.0, "male"),
    ("a 9 month old girl", 0.75, "female"),
    ("rash in a 130 year old man", None, "male"),
    ("she and her husband", None, None),
    ("no demographic information", None, None),
])
def test_age_and_sex(tagger: CaptionTagger, text: str, age: float | None, sex: str | None) -> None:
    tags = tagger.tag(text)
    assert (tags.age, tags.sex) == (age, sex)


@pytest.mark.parametrize("caption", [None, "", "   ", "!!!", "\x00\x01", "👍🏽 🔥"])
def test_empty_and_junk_captions_give_empty_tags(tagger: CaptionTagger, caption: str | None) -> None:
    tags = tagger.tag(caption)
    assert not any(getattr(tags, name) for name in VOCABULARIES) and tags.negated == {}


def test_non_utf8_bytes_are_decoded_with_replacement(tagger: CaptionTagger) -> None:
    tags = tagger.tag(b"\xff\xfe\x80 psoriasis on the \xe9lbow")
    assert tags.conditions == ("psoriasis",)
    assert normalize_caption(b"caf\xc3\xa9-au-lait") == " cafe au lait "


def test_very_long_caption_is_linear_and_complete(tagger: CaptionTagger) -> None:
    text = "benign-looking skin, " * 20_000 + "melanoma on the scalp. no itch"
    start = time.perf_counter()
    tags = tagger.tag(text)
    assert time.perf_counter() - start < 5
    assert tags.conditions == ("melanoma",) and tags.body_sites == ("scalp",)
    assert tags.negated == {"symptoms": ("itch",)}


def test_parallel_tagging_matches_serial(tagger: CaptionTagger) -> None:
    captions = [g.text for g in CaptionGenerator(seed=2).captions(400)] + [None, b"\xff", ""]
    serial = tag_captions(captions, workers=1, tagger=tagger, chunk_size=50)
    parallel = tag_captions(captions, workers=2, tagger=tagger, chunk_size=50)
    assert parallel.equals(serial)
    assert serial.num_rows == len(captions)
    assert serial.column("conditions")[0].as_py() == list(tagger.tag(captions[0]).conditions)


def test_tag_table_writes_a_sidecar_and_the_cli_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [Case(case_id=f"c{i}", image_paths=[f"/x/{i}.png"], source="derm1m", caption=caption)
             for i, caption in enumerate(["Plaque psoriasis on the knee, itchy.", None, "", "no melanoma"])]
    table = write_table(cases, tmp_path / "table")
    summary = tag_table(table, workers=1)
    tags = pq.read_table(table / TAGS_FILE).to_pylist()
    assert summary["cases"] == 4 and summary["with_condition"] == 1
    assert [t["case_id"] for t in tags] == ["c0", "c1", "c2", "c3"]
    assert tags[0]["conditions"] == ["plaque_psoriasis"] and tags[0]["symptoms"] == ["itch"]
    assert tags[0]["body_sites"] == ["knee"] and tags[3]["negated_conditions"] == ["melanoma"]
    (table / TAGS_FILE).unlink()
    assert main(["curate", "tag", str(table), "--workers", "2", "--json"]) == 0
    assert '"with_condition": 1' in capsys.readouterr().out
    assert (table / TAGS_FILE).exists()
