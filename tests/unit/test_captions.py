"""Captions built from a case's structured fields."""

from __future__ import annotations

import dataclasses
import re

import pytest

from dermkit.data.captions import captions_for_case
from dermkit.data.table import Case
from dermkit.ontology import default_ontology

RICH = Case(
    case_id="pad-ufes-20:PAT_1_1_1", image_paths=["/x.png"], source="pad-ufes-20", age=45.0, sex="female",
    fitzpatrick=3, body_site="back", symptoms=["itch", "bleeding"], duration="one to four weeks",
    diagnosis="NEV", diagnosis_id="melanocytic_nevus", differential={"melanocytic_nevus": 1.0},
    acquisition="clinical", history={"grew": True, "hurt": False, "smoke": True},
)
BARE = Case(case_id="ham10000:ISIC_1", image_paths=["/y.png"], source="ham10000", diagnosis="mel",
            diagnosis_id="melanoma", acquisition="dermoscopic")


def condition_terms(condition_id: str) -> list[str]:
    node = default_ontology().conditions.get(condition_id)
    return [term.lower() for term in node.terms]


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    assert captions_for_case(RICH, n=4, seed=7) == captions_for_case(RICH, n=4, seed=7)
    assert captions_for_case(RICH, n=4, seed=7) != captions_for_case(RICH, n=4, seed=8)
    other_case = dataclasses.replace(RICH, case_id="pad-ufes-20:PAT_2_2_2")
    assert captions_for_case(RICH, n=4, seed=7) != captions_for_case(other_case, n=4, seed=7)


def test_several_distinct_sentences_that_all_name_the_diagnosis() -> None:
    captions = captions_for_case(RICH, n=5)
    assert len(captions) == len(set(captions)) == 5
    terms = condition_terms("melanocytic_nevus")
    for caption in captions:
        assert any(term in caption.lower() for term in terms), caption
        assert caption[0].isupper() and caption.endswith(".")


def test_never_codes_none_or_nan() -> None:
    captions = [c for seed in range(40) for c in captions_for_case(RICH, n=3, seed=seed)]
    words = {word for caption in captions for word in re.findall(r"[\w/]+", caption)}
    assert not words & {"NEV", "NV", "None", "nan", "null"}
    assert "melanocytic_nevus" not in " ".join(captions)


def test_uses_the_recorded_facts() -> None:
    text = " ".join(c for seed in range(10) for c in captions_for_case(RICH, n=3, seed=seed))
    for fact in ("clinical", "on the back", "45-year-old woman", "woman in her forties", "type III", "itch",
                 "bleeding", "growth", "one to four weeks"):
        assert fact in text, fact
    assert "pain" not in text  # "hurt" was answered no
    assert "smok" not in text  # history that is not a symptom is left out


def test_missing_fields_are_never_mentioned() -> None:
    captions = [c for seed in range(30) for c in captions_for_case(BARE, n=3, seed=seed)]
    text = " ".join(captions)
    assert all(re.search("derm(at)?oscop", c.lower()) for c in captions)
    for absent in ("year-old", "woman", " man", "patient", "Fitzpatrick", " on the ", "Present", "symptom"):
        assert absent not in text, absent
    assert any(term in text.lower() for term in condition_terms("melanoma"))


@pytest.mark.parametrize(
    ("age", "sex", "phrase"),
    [(34.5, "male", "man in his thirties"), (8.0, "female", "an 8-year-old girl"),
     (12.0, None, "a 12-year-old patient"), (0.5, None, "infant"), (83.0, "male", "an 83-year-old man"),
     (None, "male", "a male patient")],
)
def test_age_and_sex_phrases(age: float | None, sex: str | None, phrase: str) -> None:
    case = dataclasses.replace(BARE, age=age, sex=sex)
    text = " ".join(c for seed in range(20) for c in captions_for_case(case, n=3, seed=seed))
    assert phrase in text
    assert "34.5" not in text


def test_differential_without_diagnosis_id_uses_the_top_condition() -> None:
    case = dataclasses.replace(BARE, diagnosis_id=None, differential={"melanoma": 0.3, "melanocytic_nevus": 0.7})
    terms = condition_terms("melanocytic_nevus")
    assert all(any(t in c.lower() for t in terms) for c in captions_for_case(case, n=5))


def test_unlabelled_case_still_gets_captions() -> None:
    case = Case(case_id="x:1", image_paths=["/z.png"], source="x", body_site="face")
    captions = captions_for_case(case, n=3)
    assert len(captions) == 3 and all("skin" in c for c in captions)


def test_a_derm1m_caption_is_kept_unchanged_and_first() -> None:
    own = "Erythematous plaques with silvery scale on the elbows , psoriasis"
    case = dataclasses.replace(RICH, caption=own)
    captions = captions_for_case(case, n=3, seed=5)
    assert captions[0] == own and len(captions) == 3 and own not in captions[1:]
    assert captions_for_case(case, n=1) == [own]


def test_always_n_captions_even_when_few_variants_exist() -> None:
    case = Case(case_id="x:2", image_paths=["/z.png"], source="x", acquisition="dermoscopic")
    for n in (0, 1, 6, 12):
        assert len(captions_for_case(case, n=n)) == n
