"""Inverse rank normalisation: the reference standard of SCIN and the differential-diagnosis system."""

from __future__ import annotations

import pytest

from dermkit.data.aggregate import Grade, aggregate_differential, grader_weights, top_condition


def test_reproduces_the_worked_example_exactly() -> None:
    grades = [
        Grade(["eczema", "psoriasis"], [4, 2]),
        Grade(["psoriasis"], [5]),
        Grade(["eczema", "tinea"], [3, 3]),
    ]
    result = aggregate_differential(grades)
    assert result == pytest.approx({"eczema": 4 / 9, "psoriasis": 3 / 9, "tinea": 2 / 9}, abs=1e-12)
    assert list(result) == ["eczema", "psoriasis", "tinea"]


def test_ties_share_a_dense_rank() -> None:
    weights = grader_weights(Grade(["a", "b", "c"], [5, 5, 1]))
    assert weights == {"a": 1.0, "b": 1.0, "c": 0.5}


def test_order_is_the_rank_without_confidences() -> None:
    assert grader_weights(Grade(["a", "b", "c"])) == pytest.approx({"a": 1.0, "b": 0.5, "c": 1 / 3})


def test_names_are_mapped_before_summing() -> None:
    synonyms = {"atopic dermatitis": "eczema", "eczema": "eczema", "psoriasis": "psoriasis"}
    result = aggregate_differential(
        [Grade(["atopic dermatitis"], [4]), Grade(["eczema", "psoriasis"], [5, 1])], to_id=synonyms.__getitem__
    )
    assert result == pytest.approx({"eczema": 2 / 2.5, "psoriasis": 0.5 / 2.5})


def test_two_names_of_one_condition_count_once_per_grader() -> None:
    result = aggregate_differential([Grade(["ad", "eczema"], [5, 3])], to_id=lambda name: "eczema")
    assert result == {"eczema": 1.0}


def test_graders_without_conditions_add_nothing_and_ungraded_case_has_no_label() -> None:
    assert aggregate_differential([Grade([]), Grade(["tinea"], [2])]) == {"tinea": 1.0}
    assert aggregate_differential([Grade([]), Grade([])]) is None
    assert aggregate_differential([]) is None
    assert top_condition(None) is None


def test_top_condition_breaks_ties_by_id() -> None:
    assert top_condition({"b": 0.5, "a": 0.5}) == "a"


def test_mismatched_confidences_are_rejected() -> None:
    with pytest.raises(ValueError, match="2 conditions but 1 confidences"):
        Grade(["a", "b"], [3])


# -- ties given by order alone: rank groups --------------------------------------------------------

def test_rank_groups_express_ties_without_confidences() -> None:
    grade = Grade.from_rank_groups([["a"], ["b", "c"], ["d"]])
    assert list(grade.conditions) == ["a", "b", "c", "d"]
    assert (list(grade.ranks), list(grade.confidences)) == ([0, 1, 1, 2], [])
    assert grader_weights(grade) == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.5, "d": 1 / 3}, abs=1e-12)


def test_ranks_are_dense_like_confidence_groups() -> None:
    # Ranks 0, 2, 2 mean first, then two tied second: the same weights as confidences 5, 3, 3.
    assert grader_weights(Grade(["a", "b", "c"], ranks=[0, 2, 2])) == grader_weights(Grade(["a", "b", "c"], [5, 3, 3]))
    assert grader_weights(Grade(["b", "a"], ranks=[1, 1])) == {"a": 1.0, "b": 1.0}


def test_rank_groups_aggregate_with_mapping_and_other_graders() -> None:
    grades = [
        Grade.from_rank_groups([["atopic dermatitis"], ["psoriasis", "tinea"]]),  # 1, 1/2, 1/2
        Grade(["psoriasis"], [5]),                                                 # 1
        Grade(["eczema", "tinea"]),                                                # order: 1, 1/2
    ]
    synonyms = {"atopic dermatitis": "eczema", "eczema": "eczema", "psoriasis": "psoriasis", "tinea": "tinea"}
    result = aggregate_differential(grades, to_id=synonyms.__getitem__)
    assert result == pytest.approx({"eczema": 2 / 4.5, "psoriasis": 1.5 / 4.5, "tinea": 1 / 4.5}, abs=1e-12)


def test_one_grade_one_condition_twice_keeps_the_better_rank_group() -> None:
    grade = Grade.from_rank_groups([["b"], ["ad", "x"]])
    result = aggregate_differential([grade], to_id=lambda name: "x" if name == "x" else "e")
    assert result == pytest.approx({"e": 2 / 3, "x": 1 / 3})


def test_empty_rank_groups_give_no_conditions() -> None:
    assert aggregate_differential([Grade.from_rank_groups([])]) is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"confidences": [3, 2], "ranks": [0, 1]}, "confidences or ranks, not both"),
    ({"ranks": [0]}, "2 conditions but 1 ranks"),
    ({"ranks": [0, -1]}, "whole numbers >= 0"),
    ({"ranks": [0, 1.5]}, "whole numbers >= 0"),
])
def test_bad_ranks_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Grade(["a", "b"], **kwargs)
