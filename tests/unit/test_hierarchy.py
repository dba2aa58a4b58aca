"""Predictions at coarser ontology levels, and the one rule for readable ontology terms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dermkit.core.errors import InputError
from dermkit.data.captions import captions_for_case
from dermkit.data.predictions import Predictions
from dermkit.data.table import Case
from dermkit.evaluate.hierarchy import at_level, merge_matrix
from dermkit.metrics import accuracy, confusion_matrix
from dermkit.models import prompts
from dermkit.ontology import default_ontology

# melanoma and nevus are melanocytic; BCC and AK keratinocytic (level 2 of the shipped ontology).
CLASSES = ("melanoma", "melanocytic_nevus", "basal_cell_carcinoma", "actinic_keratosis")
PROBS = np.array([
    [0.2, 0.5, 0.2, 0.1],  # melanoma called nevus: wrong, but right as melanocytic
    [0.1, 0.6, 0.2, 0.1],  # nevus called nevus
    [0.1, 0.1, 0.3, 0.5],  # BCC called AK: wrong, but right as keratinocytic
    [0.4, 0.3, 0.2, 0.1],  # AK called melanoma: wrong at both levels
    [0.25, 0.25, 0.25, 0.25],  # unlabelled
])
LABELS = [0, 1, 2, 3, -1]


def _predictions() -> Predictions:
    cases = pd.DataFrame({"case_id": [f"c{i}" for i in range(5)], "patient_id": ["p0", "p0", "p1", "p2", "p3"]})
    return Predictions.from_cases(cases, PROBS, LABELS, model_id="m", classes=CLASSES)


def test_family_level_sums_probabilities_and_forgives_confusions_inside_a_family() -> None:
    fine = _predictions()
    family = at_level(fine, 2)
    assert family.classes == ("melanocytic_neoplasm", "keratinocytic_neoplasm")
    np.testing.assert_allclose(family.probs(), [[0.7, 0.3], [0.7, 0.3], [0.2, 0.8], [0.7, 0.3], [0.5, 0.5]])
    assert family.labels().tolist() == [0, 0, 1, 1, -1]
    labelled_fine, labelled_family = fine.labelled(), family.labelled()
    assert accuracy(labelled_fine.probs(), labelled_fine.labels()) == pytest.approx(0.25)
    assert accuracy(labelled_family.probs(), labelled_family.labels()) == pytest.approx(0.75)
    assert confusion_matrix(labelled_family.probs(), labelled_family.labels()).tolist() == [[2, 0], [1, 1]]
    assert family.frame["patient_id"].tolist() == fine.frame["patient_id"].tolist()


def test_top_level_merges_everything_and_soft_targets_are_summed_too() -> None:
    fine = _predictions()
    fine.frame["target"] = [np.array([0.5, 0.5, 0.0, 0.0]), None, None, np.array([0.0, 0.2, 0.0, 0.8]), None]
    root = at_level(fine, 1)
    assert root.classes == ("neoplasm",) and root.labels().tolist() == [0, 0, 0, 0, -1]
    family = at_level(fine, 2)
    np.testing.assert_allclose(family.frame["target"][3], [0.2, 0.8])
    assert family.frame["target"][1] is None
    # a class above the requested level stays itself
    deep = at_level(fine, 5)
    assert deep.classes == CLASSES
    np.testing.assert_allclose(deep.probs(), PROBS)
    with pytest.raises(InputError):
        at_level(fine, 0)


def test_merge_matrix_keeps_first_seen_order() -> None:
    groups, matrix = merge_matrix(["b", "a", "b"])
    assert groups == ["b", "a"]
    assert matrix.tolist() == [[1, 0], [0, 1], [1, 0]]


def test_captions_and_prompts_share_one_readable_terms_rule() -> None:
    conditions = default_ontology().conditions
    scc = conditions.readable_terms("squamous_cell_carcinoma")
    assert "cSCC" not in scc and not any("/" in term for term in scc)
    assert scc[0] == conditions.get("squamous_cell_carcinoma").name
    assert not prompts.is_readable("cSCC") and prompts.is_readable("Basal cell carcinoma")
    # the preferred name is curated language, kept even with an acronym in it
    assert conditions.get("dress_syndrome").name in conditions.readable_terms("dress_syndrome")
    case = Case(case_id="x", image_paths=["x.png"], source="syn", diagnosis_id="squamous_cell_carcinoma",
                acquisition="clinical")
    captions = captions_for_case(case, n=12, seed=3)
    assert not any("cSCC" in caption or "SCC" in caption.split() for caption in captions)
    used = {term.lower() for term in scc}
    assert all(any(term in caption.lower() for term in used) for caption in captions)
