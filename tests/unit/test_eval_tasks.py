"""Zero-shot, concepts, linear probe and retrieval, on a fake CLIP whose embeddings we control.

The fake embeds an image as its mean colour and a text by keywords (melanoma → red, nevus/mole →
green, keratosis → blue, ...), so the right answers are known in advance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from PIL import Image

from dermkit.core.errors import InputError
from dermkit.data.table import Case, read_table, write_table
from dermkit.evaluate import concepts, linear_probe, retrieval, zeroshot
from dermkit.evaluate.metrics.collection import score_predictions
from dermkit.models import prompts
from dermkit.models.encoding import encode_prompt_sets
from dermkit.ontology import default_ontology

torch.set_num_threads(1)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
KEYWORDS = {  # keyword in a prompt → direction of its text embedding
    "melanoma": (1.0, 0.0, 0.0),
    "nev": (0.0, 1.0, 0.0), "naev": (0.0, 1.0, 0.0), "mole": (0.0, 1.0, 0.0),
    "keratosis": (0.0, 0.0, 1.0),
    "papule": (1.0, 0.0, 0.0),
    "ruler": (0.0, 1.0, 0.0), "scale bar": (0.0, 1.0, 0.0), "measuring tape": (0.0, 1.0, 0.0),
}
NEUTRAL = (0.3, 0.3, 0.3)


def text_vector(text: str) -> tuple[float, float, float]:
    """Keyword direction; dermoscopic prompts swap melanoma and nevus to prove per-case templates."""
    lowered = text.lower()
    vector = next((v for k, v in KEYWORDS.items() if k in lowered), NEUTRAL)
    if "dermoscop" in lowered or "dermatoscop" in lowered:
        vector = (vector[1], vector[0], vector[2])
    return vector


class FakeClip(torch.nn.Module):
    def __init__(self, vocabulary: list[str], overrides: dict[str, tuple[float, ...]]) -> None:
        super().__init__()
        self.vocabulary = vocabulary
        self.overrides = overrides
        self.logit_scale = torch.nn.Parameter(torch.tensor(np.log(100.0), dtype=torch.float32))

    def encode_image(self, x: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return x.mean(dim=(2, 3)) + 1e-3

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        texts = [self.vocabulary[i] for i in tokens.tolist()]
        return torch.tensor([self.overrides.get(t, text_vector(t)) for t in texts], dtype=torch.float32)


@dataclass
class FakeLoaded:
    """The LoadedModel interface the tasks use, with a tokenizer that indexes a growing vocabulary."""

    overrides: dict[str, tuple[float, ...]] = field(default_factory=dict)
    name: str = "fake-clip"
    embed_dim: int = 3
    vocabulary: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model = FakeClip(self.vocabulary, self.overrides)

    def tokenizer(self, texts: list[str]) -> torch.Tensor:
        start = len(self.vocabulary)
        self.vocabulary.extend(texts)
        return torch.arange(start, start + len(texts))

    @staticmethod
    def preprocess_eval(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def solid(path: Path, colour: tuple[int, int, int]) -> str:
    Image.new("RGB", (8, 8), colour).save(path)
    return str(path)


def make_table(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    """A case table of solid-colour images; each row gives colour, diagnosis and optional fields."""
    cases = []
    for i, row in enumerate(rows):
        row = dict(row)
        image = solid(tmp_path / f"img{i}.png", row.pop("colour"))
        cases.append(Case(case_id=f"c{i}", image_paths=[image], source=row.pop("source", "syn"), **row))
    write_table(cases, tmp_path / "table")
    return tmp_path / "table"


def extract_kwargs(tmp_path: Path) -> dict[str, Any]:
    return {"cache_dir": tmp_path / "cache", "progress": False}


# -- prompts and ensembling -------------------------------------------------------------------

def test_prompt_ensembling_normalises_before_and_after_averaging() -> None:
    loaded = FakeLoaded(overrides={"long": (10.0, 0.0, 0.0), "short": (0.0, 1.0, 0.0)})
    [ensembled] = encode_prompt_sets(loaded, [["long", "short"]])
    np.testing.assert_allclose(ensembled, [2 ** -0.5, 2 ** -0.5, 0.0], rtol=1e-6)


def test_class_prompts_use_readable_names_and_acquisition_templates() -> None:
    [melanoma] = prompts.class_prompts(["melanoma"], prompts.templates_for("dermoscopic"))
    assert "a dermoscopic image of malignant melanoma." in melanoma
    assert not any("MEL" in prompt for prompt in melanoma)
    names = prompts.readable_terms(default_ontology().conditions.get("melanoma"))
    assert len(melanoma) == len(prompts.DERMOSCOPIC_TEMPLATES) * len(names) and "MEL" not in names
    assert prompts.templates_for("clinical", "pad-ufes-20")[-2:] == prompts.SOURCE_TEMPLATES["pad-ufes-20"]
    assert prompts.is_readable("Basal cell carcinoma") and not prompts.is_readable("cSCC")
    assert not prompts.is_readable("squamous cell carcinoma/SCCIS")


# -- zero-shot --------------------------------------------------------------------------------

def test_zero_shot_recovers_planted_classes_with_templates_per_acquisition(tmp_path: Path) -> None:
    rows = [
        {"colour": RED, "diagnosis_id": "melanoma", "acquisition": "clinical"},
        {"colour": GREEN, "diagnosis_id": "melanocytic_nevus", "acquisition": "clinical"},
        {"colour": BLUE, "diagnosis_id": "seborrheic_keratosis", "acquisition": "clinical"},
        # dermoscopic prompts swap the melanoma and nevus directions in the fake text encoder
        {"colour": GREEN, "diagnosis_id": "melanoma", "acquisition": "dermoscopic"},
        {"colour": RED, "diagnosis_id": "melanocytic_nevus", "acquisition": "dermoscopic"},
        {"colour": RED, "diagnosis_id": "superficial_spreading_melanoma", "acquisition": "clinical"},
    ]
    table = make_table(tmp_path, [dict(row, split="test") for row in rows])
    classes = ["melanoma", "melanocytic_nevus", "seborrheic_keratosis"]
    predictions = zeroshot.zero_shot_predictions(FakeLoaded(), table, classes=classes, **extract_kwargs(tmp_path))
    assert predictions.classes == tuple(classes)
    np.testing.assert_array_equal(predictions.labels(), [0, 1, 2, 0, 1, 0])
    np.testing.assert_array_equal(predictions.probs().argmax(axis=1), [0, 1, 2, 0, 1, 0])
    np.testing.assert_allclose(predictions.probs().sum(axis=1), 1.0)
    result = score_predictions(predictions, n_boot=20)
    metrics = {name: entry["estimate"] for name, entry in result["metrics"].items()}
    assert metrics["top1_accuracy"] == metrics["balanced_accuracy"] == metrics["macro_auroc"] == 1.0
    assert result["n"] == 6 and metrics["top3_accuracy"] == 1.0


def test_zero_shot_report_keeps_unmapped_cases_out_of_metrics(tmp_path: Path) -> None:
    rows = [
        {"colour": RED, "diagnosis_id": "melanoma"},
        {"colour": GREEN, "diagnosis_id": "melanocytic_nevus"},
        {"colour": BLUE, "diagnosis_id": "basal_cell_carcinoma"},
        {"colour": BLUE, "diagnosis_id": "melanoma", "split": "train"},
    ]
    table = make_table(tmp_path, [{"split": "test", **row} for row in rows])
    report = zeroshot.zero_shot_report(FakeLoaded(), table, label_set=["melanoma", "melanocytic_nevus"],
                                       cache_dir=tmp_path / "cache", n_boot=20)
    assert (report["n"], report["n_unlabelled"]) == (2, 1)
    assert report["metrics"]["top1_accuracy"]["estimate"] == 1.0
    assert set(report["metrics"]) >= {"balanced_accuracy", "top3_accuracy", "macro_auroc"}


# -- concepts ---------------------------------------------------------------------------------

@pytest.fixture
def concept_table(tmp_path: Path) -> Path:
    colours = [RED, RED, GREEN, GREEN, BLUE]
    return make_table(tmp_path, [{"colour": c} for c in colours])


def annotations() -> pd.DataFrame:
    return pd.DataFrame({
        "case_id": [f"c{i}" for i in range(5)],
        "Papule": [1, 1, 0, 0, 0],
        "Ruler": ["no", "no", "yes", "yes", "no"],
    })


def test_concepts_score_planted_annotations(concept_table: Path, tmp_path: Path) -> None:
    report = concepts.concept_report(FakeLoaded(), concept_table, annotations(), **extract_kwargs(tmp_path))
    assert report["per_concept_auroc"] == {"papule": 1.0, "ruler": 1.0}
    assert report["mean_auroc"] == 1.0 and report["n_above_0.7"] == 2


def test_concept_columns_are_matched_by_name_not_position(concept_table: Path, tmp_path: Path) -> None:
    plain = concepts.concept_report(FakeLoaded(), concept_table, annotations(), **extract_kwargs(tmp_path))
    shuffled = annotations()[["Ruler", "case_id", "Papule"]].rename(columns={"Ruler": "scale bar"})
    again = concepts.concept_report(FakeLoaded(), concept_table, shuffled, **extract_kwargs(tmp_path))
    assert again["per_concept_auroc"] == plain["per_concept_auroc"]
    labels = concepts.concept_labels_from_columns(shuffled)
    assert list(labels.columns) == ["papule", "ruler"]


def test_unknown_or_repeated_concept_columns_are_errors() -> None:
    with pytest.raises(InputError, match="Blorp"):
        concepts.concept_labels_from_columns(annotations().assign(Blorp=0))
    with pytest.raises(InputError, match="two columns"):
        concepts.concept_labels_from_columns(annotations().assign(**{"scale bar": 0}))
    with pytest.raises(InputError, match="0/1"):
        concepts.concept_labels_from_columns(annotations().assign(Papule=[1, 0, 2, 0, 0]))


def test_monet_score_is_the_template_mean_of_two_way_softmax() -> None:
    embeddings = np.array([[0.62, 0.56, 0.55], [0.55, 0.6, 0.58]])
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    scores = concepts.concept_scores(FakeLoaded(), embeddings, ["papule"])

    def unit(vectors: list[tuple[float, ...]]) -> np.ndarray:
        rows = np.array(vectors) / np.linalg.norm(vectors, axis=1, keepdims=True)
        mean = rows.mean(axis=0)
        return mean / np.linalg.norm(mean)

    expected = np.zeros(2)
    pairs = prompts.concept_prompts("papule")
    for targets, reference in pairs:
        target, ref = unit([text_vector(t) for t in targets]), unit([text_vector(reference)])
        logits = 100.0 * np.stack([embeddings @ target, embeddings @ ref], axis=1)
        expected += np.exp(logits[:, 0]) / np.exp(logits).sum(axis=1) / len(pairs)
    np.testing.assert_allclose(scores[:, 0], expected, rtol=1e-4)
    assert scores[0, 0] > scores[1, 0]


# -- retrieval --------------------------------------------------------------------------------

def test_recall_on_a_one_to_one_matrix() -> None:
    similarity = np.array([[0.9, 0.1, 0.0], [0.2, 0.1, 0.8], [0.3, 0.2, 0.1]])
    result = retrieval.retrieval_metrics(similarity, np.eye(3, dtype=bool), ks=(1, 2))
    expected = {"R@1": 1 / 3, "R@2": 1 / 3, "mean_rank": 7 / 3, "median_rank": 3.0}
    assert result["image_to_text"] == pytest.approx(expected)
    assert result["text_to_image"]["R@1"] == 1 / 3
    assert result["text_to_image"]["mean_rank"] == pytest.approx((1 + 3 + 2) / 3)


def test_recall_counts_any_correct_partner_in_many_to_many() -> None:
    # image 0 has captions 0 and 1; caption 1 also describes image 1 (a shared caption)
    relevant = retrieval.relevance_matrix([(0, 0), (0, 1), (1, 1), (1, 2)], 2, 3)
    similarity = np.array([[0.1, 0.9, 0.5], [0.2, 0.6, 0.7]])
    result = retrieval.retrieval_metrics(similarity, relevant, ks=(1,))
    assert result["image_to_text"]["R@1"] == 1.0
    # caption 1's best image is image 0, which is correct even though image 1 is also correct
    np.testing.assert_array_equal(retrieval.first_hit_ranks(similarity.T, relevant.T), [2, 1, 1])


def test_ties_count_against_the_query_and_match_brute_force() -> None:
    ranks = retrieval.first_hit_ranks(np.zeros((2, 4)), np.eye(2, 4, dtype=bool))
    np.testing.assert_array_equal(ranks, [4, 4])
    rng = np.random.default_rng(0)
    similarity = rng.normal(size=(20, 30))
    relevant = rng.random((20, 30)) < 0.1
    relevant[np.arange(20), rng.integers(0, 30, 20)] = True
    order = np.argsort(-similarity, axis=1)
    brute = [1 + int(np.flatnonzero(relevant[i, order[i]])[0]) for i in range(20)]
    np.testing.assert_array_equal(retrieval.first_hit_ranks(similarity, relevant), brute)


def test_a_query_without_partner_is_an_error() -> None:
    with pytest.raises(InputError, match="no relevant"):
        retrieval.first_hit_ranks(np.zeros((2, 2)), np.array([[True, False], [False, False]]))


def test_shared_captions_become_one_text_of_several_images(tmp_path: Path) -> None:
    table = make_table(tmp_path, [
        {"colour": RED, "split": "test", "caption": "a brown mole"},
        {"colour": GREEN, "split": "test", "caption": "a brown mole"},
        {"colour": BLUE, "split": "test", "caption": "a waxy keratosis"},
    ])
    texts, relevant = retrieval.case_captions(read_table(table), captions_per_case=1)
    assert texts == ["a brown mole", "a waxy keratosis"]
    np.testing.assert_array_equal(relevant, [[True, False], [True, False], [False, True]])
    report = retrieval.retrieval_report(FakeLoaded(), table, captions_per_case=1, **extract_kwargs(tmp_path))
    assert (report["n_images"], report["n_texts"], report["images_per_caption"]) == (3, 2, 1.5)
    # the fake puts "mole" on green and "keratosis" on blue: the red image's caption ranks second
    assert report["image_to_text"]["R@1"] == pytest.approx(2 / 3)
    assert report["text_to_image"]["R@1"] == 1.0


# -- linear probe -----------------------------------------------------------------------------

def test_k_shot_draws_exactly_k_per_class_and_varies_with_seed() -> None:
    labels = np.repeat([0, 1, 2], [30, 20, 3])
    draws = [linear_probe.regime_rows("shot:4", labels, seed) for seed in (0, 1)]
    for rows in draws:
        assert np.bincount(labels[rows]).tolist() == [4, 4, 3]
        assert len(set(rows)) == len(rows)
    assert not np.array_equal(*draws)
    fraction = linear_probe.regime_rows("fraction:0.1", labels, 0)
    assert np.bincount(labels[fraction]).tolist() == [3, 2, 1]
    with pytest.raises(InputError, match="unknown regime"):
        linear_probe.regime_rows("half", labels, 0)


def planted_probe_data(seed: int = 0) -> linear_probe.ProbeData:
    """Class signal in dimension 0 plus many noise dimensions that a weakly regularised fit memorises."""
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 2
        x = rng.normal(size=(n, 60))
        x[:, 0] += np.where(y == 1, 1.0, -1.0)
        return x, y

    return linear_probe.ProbeData(*draw(24), *draw(200), *draw(200), n_classes=2)


def test_probe_picks_c_on_the_validation_split() -> None:
    data = planted_probe_data()
    _, chosen, scores = linear_probe.fit_probe(data.train_x, data.train_y, data.val_x, data.val_y, 2)
    assert scores[chosen] == max(scores.values()) and len(set(scores.values())) > 1
    _, inverted, inverted_scores = linear_probe.fit_probe(data.train_x, data.train_y, data.val_x,
                                                          1 - data.val_y, 2)
    assert inverted != chosen, "choosing on other validation labels must change the choice"
    assert inverted_scores[inverted] == max(inverted_scores.values())


def test_probe_regimes_report_mean_and_sd_over_seeds() -> None:
    data = planted_probe_data()
    result = linear_probe.run_linear_probe(data, regimes=("full", "shot:2"), seeds=(0, 1, 2), cs=(0.1, 1.0))
    assert len(result["full"]["runs"]) == 1 and result["full"]["balanced_accuracy"]["sd"] == 0.0
    assert [run["n_train"] for run in result["shot:2"]["runs"]] == [4, 4, 4]
    assert result["full"]["balanced_accuracy"]["mean"] > 0.7
    values = [run["balanced_accuracy"] for run in result["shot:2"]["runs"]]
    assert result["shot:2"]["balanced_accuracy"]["mean"] == pytest.approx(np.mean(values))
    assert result["shot:2"]["balanced_accuracy"]["sd"] == pytest.approx(np.std(values, ddof=1))


def test_probe_report_reads_cached_features_of_every_split(tmp_path: Path) -> None:
    colours = {"melanoma": RED, "melanocytic_nevus": GREEN}
    rows = [{"colour": colours[dx], "diagnosis_id": dx, "split": split}
            for split in ("train", "val", "test") for dx in colours for _ in range(2)]
    table = make_table(tmp_path, rows)
    report = linear_probe.linear_probe_report(FakeLoaded(), table, regimes=("full", "shot:1"), seeds=(0, 1),
                                              cache_dir=tmp_path / "cache", out=tmp_path / "probe.json")
    assert (report["n_train"], report["n_val"], report["n_test"]) == (4, 4, 4)
    assert report["regimes"]["full"]["balanced_accuracy"]["mean"] == 1.0
    assert (tmp_path / "probe.json").exists()
