"""SCIN label lists that the scin importer splits back into the real graders; questionnaire,
password and search helpers of the collection platform."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("sqlalchemy", reason="the collect extra is not installed")

from dermkit.collect.export import scin_order
from dermkit.collect.questionnaire import parse_answers, symptom_ids
from dermkit.collect.search import search_conditions
from dermkit.collect.security import hash_password, verify_password
from dermkit.core.errors import InputError
from dermkit.data.aggregate import Grade, aggregate_differential
from dermkit.data.importers.scin import split_graders

NAMES = ["Eczema", "Psoriasis", "Tinea", "Urticaria", "Acne"]


def flattened(order: list[tuple[int, list[tuple[str, int]]]]) -> tuple[list[str], list[int]]:
    return [n for _, a in order for n, _ in a], [c for _, a in order for _, c in a]


def test_an_invisible_boundary_is_avoided_by_reordering_the_graders() -> None:
    answers = [[("Eczema", 5), ("Psoriasis", 3)], [("Tinea", 3), ("Urticaria", 1)]]
    # As given, the importer would cut in the wrong place (3 → 3 with new names is no visible boundary) ...
    assert split_graders(["Eczema", "Psoriasis", "Tinea", "Urticaria"], [5, 3, 3, 1]) == [
        Grade(["Eczema", "Psoriasis", "Tinea"], [5, 3, 3]), Grade(["Urticaria"], [1])]
    # ... so the export lists the second grader first.
    order = scin_order(answers)
    assert [i for i, _ in order] == [1, 0]
    assert split_graders(*flattened(order)) == [Grade(["Tinea", "Urticaria"], [3, 1]),
                                                 Grade(["Eczema", "Psoriasis"], [5, 3])]


def test_random_answers_reimport_with_the_same_graders_or_at_least_the_same_weights() -> None:
    rng = random.Random(0)
    exact = 0
    for _ in range(400):
        answers = [[(name, rng.randint(1, 5)) for name in rng.sample(NAMES, rng.randint(1, 3))]
                   for _ in range(rng.randint(1, 3))]
        order = scin_order(answers)
        assert sorted(i for i, _ in order) == list(range(len(answers)))
        assert all(sorted(a) == sorted(answers[i]) for i, a in order)
        truth = [Grade([n for n, _ in a], [c for _, c in a]) for a in answers]
        rebuilt = split_graders(*flattened(order)) if len(answers) > 1 else [Grade(*map(list, zip(*order[0][1])))]
        assert aggregate_differential(rebuilt) == pytest.approx(aggregate_differential(truth))
        exact += len(rebuilt) == len(answers)
    assert exact >= 390  # only graders sharing one confidence level can merge, harmlessly


def test_answers_are_validated_and_put_in_form_order() -> None:
    answers = parse_answers({"age_group": "AGE_18_TO_29"},
                            {"body_parts": ["leg", "arm", "arm"], "condition_symptoms": ["pain", "itching"]})
    assert answers.body_parts == ["arm", "leg"]
    assert symptom_ids(answers) == ["itch", "pain"]
    assert symptom_ids(parse_answers({}, {"other_symptoms": ["no_relevant_symptoms"]})) == []
    assert symptom_ids(parse_answers({}, {})) is None
    with pytest.raises(InputError) as error:
        parse_answers({}, {"textures": ["slimy"]})
    assert error.value.field == "textures"
    with pytest.raises(InputError) as error:
        parse_answers({"sex_at_birth": "F"}, {})
    assert error.value.field == "sex_at_birth"


def test_passwords_are_salted_scrypt_hashes() -> None:
    first, second = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert first.startswith("scrypt$") and first != second
    assert verify_password("correct horse battery", first)
    assert not verify_password("correct horse batterY", first)
    assert not verify_password("anything", "md5$abc")


def test_condition_search_matches_names_and_synonyms_prefix_first() -> None:
    assert search_conditions("psoria")[0]["id"] == "psoriasis"
    by_synonym = search_conditions("seborrhoeic ker")
    assert by_synonym[0]["id"] == "seborrheic_keratosis" and by_synonym[0]["matched"]
    assert len({r["id"] for r in search_conditions("carcinoma")}) == len(search_conditions("carcinoma")) <= 10
    assert search_conditions("  ") == []
