"""Caption tagging: vocabulary matches, most-specific conditions, skin types, negation, variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dermkit.ontology import default_ontology, load_ontology, tag_text
from dermkit.ontology.tagger import tagger_for


def test_finds_every_vocabulary_in_one_caption() -> None:
    tags = tag_text("Itchy, scaly erythematous plaques on both elbows, Fitzpatrick type IV. Psoriasis.")
    assert tags.conditions == ("psoriasis",)
    assert tags.concepts == ("scale", "erythema", "plaque")
    assert tags.body_sites == ("elbow",)
    assert tags.symptoms == ("itch",)
    assert tags.fitzpatrick == (4,)
    assert tags.negated == {}


def test_dermoscopic_structures_and_artifacts() -> None:
    tags = tag_text("Dermoscopy: atypical pigment network, blue-white veil and a ruler with ink marking.")
    assert set(tags.concepts) == {"atypical_network", "blue_white_veil", "ruler", "ink_marking"}


def test_keeps_only_the_most_specific_condition() -> None:
    tags = tag_text("Melanoma, specifically a superficial spreading melanoma; compare with a naevus.")
    assert tags.conditions == ("superficial_spreading_melanoma", "melanocytic_nevus")


def test_longest_term_wins() -> None:
    assert tag_text("nodular basal cell carcinoma").conditions == ("nodular_basal_cell_carcinoma",)
    # "non" is a negation cue, but "non-bullous impetigo" is a longer condition name.
    tags = tag_text("non-bullous impetigo")
    assert tags.conditions == ("non_bullous_impetigo",) and tags.negated == {}


@pytest.mark.parametrize(("text", "vocabulary", "node_id"), [
    ("no scale", "concepts", "scale"),
    ("The lesion is not itchy", "symptoms", "itch"),
    ("A nodule without ulceration", "concepts", "ulcer"),
    ("Patient denies pain", "symptoms", "pain"),
    ("negative for melanoma", "conditions", "melanoma"),
])
def test_negated_terms_are_reported_apart(text: str, vocabulary: str, node_id: str) -> None:
    tags = tag_text(text)
    assert tags.negated[vocabulary] == (node_id,)
    assert node_id not in getattr(tags, vocabulary)


def test_negation_scope_ends_at_punctuation_and_contrast_words() -> None:
    tags = tag_text("No itching, bleeding reported. Not painful but crusted.")
    assert tags.negated == {"symptoms": ("itch", "pain")}
    assert tags.symptoms == ("bleeding",)
    assert tags.concepts == ("crust",)
    assert tag_text("without scale or crust").negated == {"concepts": ("scale", "crust")}


@pytest.mark.parametrize(("text", "concept"), [
    ("papules", "papule"), ("bullae", "bulla"), ("multiple vesicles", "vesicle"), ("two patches", "patch"),
    ("greyish", "blue_grey"), ("grayish", "blue_grey"), ("colour variegation", "multicoloured"),
    ("color variegation", "multicoloured"),
])
def test_plural_and_spelling_variants(text: str, concept: str) -> None:
    assert tag_text(text).concepts == (concept,)


@pytest.mark.parametrize(("text", "condition"), [
    ("haemangioma", "hemangioma"), ("hemangiomas", "hemangioma"), ("seborrhoeic keratoses", "seborrheic_keratosis"),
    ("dysplastic naevi", "dysplastic_nevus"), ("dysplastic nevi", "dysplastic_nevus"), ("milia", "milia"),
    ("generalised granuloma annulare", "granuloma_annulare"),
    ("leucocytoclastic vasculitis", "leukocytoclastic_vasculitis"),
])
def test_condition_variants(text: str, condition: str) -> None:
    assert tag_text(text).conditions == (condition,)


@pytest.mark.parametrize(("text", "expected"), [
    ("Fitzpatrick type IV", (4,)), ("skin type 5", (5,)), ("FST III", (3,)), ("phototype II", (2,)),
    ("Fitzpatrick skin type: VI", (6,)), ("Fitzpatrick III-IV", (3, 4)), ("skin type 2 or 3", (2, 3)),
    ("type 2 diabetes", ()), ("skin type 9", ()),
])
def test_fitzpatrick_types(text: str, expected: tuple[int, ...]) -> None:
    assert tag_text(text).fitzpatrick == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Monk skin tone 7", (7,)), ("MST 10", (10,)), ("monk scale 3-4", (3, 4)), ("monkey 7", ()),
])
def test_monk_tones(text: str, expected: tuple[int, ...]) -> None:
    assert tag_text(text).monk == expected


def test_ambiguous_terms_are_not_tagged() -> None:
    tags = tag_text("It came back after an AK was treated; other spots too.")
    assert tags.body_sites == ()
    assert tags.conditions == ()


def test_phrases_for_ambiguous_sites_still_tag() -> None:
    assert tag_text("seborrheic keratoses on the back").body_sites == ("back",)


def test_a_term_of_two_vocabularies_is_reported_in_both() -> None:
    tags = tag_text("hypertrophic scar")
    assert tags.conditions == ("hypertrophic_scar",)
    assert tag_text("a scar").conditions == ("scar_condition",) and tag_text("a scar").concepts == ("scar",)


def test_empty_and_unmatched_text() -> None:
    assert tag_text("").as_dict() == tag_text("nothing relevant here").as_dict()
    assert tag_text("").conditions == ()


def test_as_dict_is_json_ready() -> None:
    document = json.loads(json.dumps(tag_text("no scale; psoriasis").as_dict()))
    assert document["conditions"] == ["psoriasis"]
    assert document["negated"] == {"concepts": ["scale"]}


def test_matcher_is_compiled_once_per_ontology(tmp_path: Path) -> None:
    shipped = default_ontology()
    assert tagger_for(shipped) is tagger_for(shipped)
    path = tmp_path / "ontology.json"
    path.write_text(json.dumps({"Inflammatory": ["Eczema"], "Eczema": ["Atopic dermatitis"]}))
    custom = load_ontology(path)
    assert tagger_for(custom) is not tagger_for(shipped)
    assert tag_text("eczema, atopic dermatitis", custom).conditions == ("atopic_dermatitis",)
