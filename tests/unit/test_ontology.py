"""The shipped ontology: lookups, tree walks, the Derm1M loader, and coverage of every source's labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from dermkit.ontology import Hierarchy, UnknownTermError, default_ontology, load_ontology, normalize_term

ONT = default_ontology()

HAM_CODES = {"nv": "melanocytic_nevus", "mel": "melanoma", "bcc": "basal_cell_carcinoma",
             "akiec": "actinic_keratosis", "bkl": "benign_keratosis", "df": "dermatofibroma",
             "vasc": "vascular_neoplasm"}
PAD_CODES = {"NEV": "melanocytic_nevus", "MEL": "melanoma", "BCC": "basal_cell_carcinoma",
             "SCC": "squamous_cell_carcinoma", "ACK": "actinic_keratosis", "SEK": "seborrheic_keratosis"}
ISIC_CODES = {"MEL": "melanoma", "NV": "melanocytic_nevus", "BCC": "basal_cell_carcinoma",
              "AK": "actinic_keratosis", "AKIEC": "actinic_keratosis", "BKL": "benign_keratosis",
              "DF": "dermatofibroma", "VASC": "vascular_neoplasm", "SCC": "squamous_cell_carcinoma",
              "UNK": "unknown_or_other"}

# DDI's 78 `disease` strings, as released.
DDI_DISEASES = ["melanoma-in-situ", "mycosis-fungoides", "squamous-cell-carcinoma-in-situ", "basal-cell-carcinoma", "squamous-cell-carcinoma", "melanoma-acral-lentiginous", "basal-cell-carcinoma-superficial", "squamous-cell-carcinoma-keratoacanthoma", "subcutaneous-t-cell-lymphoma", "melanocytic-nevi", "seborrheic-keratosis-irritated", "focal-acral-hyperkeratosis", "hyperpigmentation", "lipoma", "foreign-body-granuloma", "blue-nevus", "verruca-vulgaris", "acrochordon", "wart", "epidermal-nevus", "abrasions-ulcerations-and-physical-injuries", "basal-cell-carcinoma-nodular", "epidermal-cyst", "acquired-digital-fibrokeratoma", "seborrheic-keratosis", "trichilemmoma", "pyogenic-granuloma", "neurofibroma", "syringocystadenoma-papilliferum", "nevus-lipomatosus-superficialis", "benign-keratosis", "inverted-follicular-keratosis", "onychomycosis", "dermatofibroma", "trichofolliculoma", "lymphocytic-infiltrations", "prurigo-nodularis", "kaposi-sarcoma", "scar", "eccrine-poroma", "angioleiomyoma", "keloid", "hematoma", "metastatic-carcinoma", "melanoma", "angioma", "folliculitis", "atypical-spindle-cell-nevus-of-reed", "xanthogranuloma", "eczema-spongiotic-dermatitis", "arteriovenous-hemangioma", "acne-cystic", "verruciform-xanthoma", "molluscum-contagiosum", "condyloma-accuminatum", "morphea", "neuroma", "dysplastic-nevus", "nodular-melanoma-(nm)", "actinic-keratosis", "pigmented-spindle-cell-nevus-of-reed", "dermatomyositis", "glomangioma", "cellular-neurothekeoma", "fibrous-papule", "graft-vs-host-disease", "lichenoid-keratosis", "reactive-lymphoid-hyperplasia", "coccidioidomycosis", "leukemia-cutis", "sebaceous-carcinoma", "chondroid-syringoma", "tinea-pedis", "solar-lentigo", "clear-cell-acanthoma", "abscess", "blastic-plasmacytoid-dendritic-cell-neoplasm", "acral-melanotic-macule"]

SCIN_CONDITIONS = [
    "Eczema", "Allergic Contact Dermatitis", "Urticaria", "Insect Bite", "Folliculitis", "Psoriasis", "Tinea",
    "Herpes Zoster", "Impetigo", "Acne", "Pigmented purpuric eruption", "Irritant Contact Dermatitis",
    "Inflicted skin lesions", "Lichen planus/lichenoid eruption", "Drug Rash", "Viral Exanthem",
    "Pityriasis rosea", "Stasis Dermatitis", "Scabies", "Molluscum Contagiosum", "Herpes Simplex", "Cellulitis",
    "Abscess", "Hypersensitivity", "Keratosis pilaris", "SK/ISK", "CD - Contact dermatitis", "Prurigo nodularis",
    "Miliaria", "Intertrigo", "Tinea Versicolor", "Erythema multiforme", "Post-Inflammatory hyperpigmentation",
    "Leukocytoclastic Vasculitis", "Lichen Simplex Chronicus", "Granuloma annulare", "Rosacea",
    "O/E - ecchymoses present", "Abrasion, scrape, or scab", "Acute and chronic dermatitis",
    "Seborrheic Dermatitis", "Photodermatitis", "Verruca vulgaris", "SCC/SCCIS", "Purpura", "Syphilis",
    "Cutaneous lupus", "Pityriasis lichenoides", "Lichen nitidus", "Chronic dermatitis, NOS", "Ecthyma",
    "Onychomycosis", "Infected eczema", "Livedo reticularis", "Traumatic petechiae", "Hemangioma",
    "Cutaneous T Cell Lymphoma", "Melanocytic Nevus", "Scar Condition", "Xerosis", "Superficial wound of body region",
    "Erythema ab igne", "Erythrasma", "Cutaneous larva migrans", "Grover's disease", "Sweet syndrome",
    "Pseudolymphoma", "Lymphocutaneous sporotrichosis", "Burn of skin", "Contact burn of skin", "Sunburn",
    "Acanthosis nigricans", "Acne keloidalis", "Acral erythema", "Angiosarcoma of skin", "Blister",
    "Chicken pox exanthem", "Hematoma of skin", "Perforating dermatosis", "Fox-Fordyce disease",
    "Hemosiderin pigmentation of skin due to venous insufficiency", "Skin lesion in drug addict", "Skin Tag",
]

# The 26 conditions of the differential-diagnosis system, exactly as published.
DDX26_NAMES = [
    "acne", "actinic keratosis", "allergic contact dermatitis", "alopecia areata", "androgenetic alopecia",
    "basal cell carcinoma", "cyst", "eczema", "folliculitis", "hidradenitis", "lentigo", "melanocytic nevus",
    "melanoma", "post-inflammatory hyperpigmentation", "psoriasis", "squamous cell carcinoma/SCCIS",
    "seborrheic keratosis/irritated SK", "scar condition", "seborrheic dermatitis", "skin tag", "stasis dermatitis",
    "tinea", "tinea versicolor", "urticaria", "verruca vulgaris", "vitiligo",
]

HAM_SITES = ["abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand", "lower extremity",
             "neck", "scalp", "trunk", "upper extremity"]
PAD_SITES = ["ARM", "NECK", "FACE", "HAND", "FOREARM", "CHEST", "NOSE", "THIGH", "SCALP", "EAR", "BACK", "FOOT",
             "ABDOMEN", "LIP"]
SCIN_SITES = ["HEAD_OR_NECK", "ARM", "PALM", "BACK_OF_HAND", "TORSO_FRONT", "TORSO_BACK", "GENITALIA_OR_GROIN",
              "BUTTOCKS", "LEG", "FOOT_TOP_OR_SIDE", "FOOT_SOLE", "OTHER"]
ISIC_SITES = ["anterior torso", "posterior torso", "lateral torso", "upper extremity", "lower extremity",
              "head/neck", "palms/soles", "oral/genital", "torso"]


# -- lookups and tree walks ---------------------------------------------------------------------

@pytest.mark.parametrize("term", ["basal_cell_carcinoma", "Basal-Cell  Carcinoma.", "BCC", "bcc", "rodent ulcer"])
def test_every_id_name_and_synonym_resolves_ignoring_case_and_punctuation(term: str) -> None:
    assert ONT.conditions.get(term).id == "basal_cell_carcinoma"


def test_british_and_american_spellings_are_both_synonyms() -> None:
    assert ONT.conditions.get("seborrhoeic keratosis").id == ONT.conditions.get("seborrheic keratosis").id
    assert ONT.conditions.get("melanocytic naevus").id == "melanocytic_nevus"


def test_unknown_term_raises_with_distinct_suggestions() -> None:
    with pytest.raises(UnknownTermError) as raised:
        ONT.conditions.get("melanomma")
    assert "Melanoma" in raised.value.suggestions
    assert len(raised.value.suggestions) == len(set(raised.value.suggestions))


def test_tree_walks() -> None:
    conditions = ONT.conditions
    assert conditions.parent("superficial_spreading_melanoma").id == "melanoma"
    assert [n.id for n in conditions.ancestors("superficial_spreading_melanoma")] == [
        "melanoma", "melanocytic_neoplasm", "neoplasm"]
    assert conditions.level("neoplasm") == 1
    assert conditions.level("superficial_spreading_melanoma") == 4
    descendants = {n.id for n in conditions.descendants("benign_keratosis")}
    assert {"seborrheic_keratosis", "solar_lentigo", "lichen_planus_like_keratosis",
            "irritated_seborrheic_keratosis"} <= descendants
    assert "melanoma" not in descendants
    assert conditions.lowest_common_ancestor("melanoma", "melanocytic_nevus").id == "melanocytic_neoplasm"
    assert conditions.lowest_common_ancestor("melanoma", "basal_cell_carcinoma").id == "neoplasm"
    assert conditions.lowest_common_ancestor("melanoma", "psoriasis") is None
    assert conditions.at_level("nodular_basal_cell_carcinoma", 2).id == "keratinocytic_neoplasm"


def test_shipped_vocabularies_have_the_promised_shape() -> None:
    assert ONT.conditions.depth() >= 4
    assert len(ONT.conditions) >= 300
    assert 100 <= len(ONT.concepts) <= 160
    assert {n.id for n in ONT.concepts.roots()} >= {"morphology", "colour", "shape_distribution",
                                                    "dermoscopic_structure", "artifact"}
    slug = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
    for hierarchy in ONT.vocabularies():
        assert all(slug.match(node.id) for node in hierarchy), hierarchy.kind


def test_ids_that_other_code_relies_on_are_kept() -> None:
    for node_id in ["melanoma", "melanocytic_nevus", "basal_cell_carcinoma", "squamous_cell_carcinoma",
                    "actinic_keratosis", "seborrheic_keratosis", "dermatofibroma", "vascular_neoplasm"]:
        assert ONT.conditions.find(node_id) is not None
    for node_id in ["head_neck", "face", "trunk", "back"]:
        assert ONT.body_sites.find(node_id) is not None


def test_every_untagged_entry_is_a_term_of_its_own_node() -> None:
    """`untagged` lists must name the node's own terms; anything else is a typo that tags silently."""
    for hierarchy in ONT.vocabularies():
        for node in hierarchy:
            for term in node.attributes.get("untagged", ()):
                assert hierarchy.find(str(term)) is node, (hierarchy.kind, node.id, term)


def test_lookup_searches_conditions_then_concepts_sites_and_symptoms() -> None:
    hierarchy, node = ONT.lookup("scar")
    assert (hierarchy.kind, node.id) == ("condition", "scar_condition")
    assert ONT.lookup("blue-white veil")[1].id == "blue_white_veil"
    assert ONT.lookup("armpit")[1].id == "axilla"
    assert ONT.lookup("hurt")[1].id == "pain"
    with pytest.raises(UnknownTermError):
        ONT.lookup("zzzz not a term")


def test_describe_gives_path_and_children() -> None:
    record = ONT.conditions.describe("SK")
    assert record["id"] == "seborrheic_keratosis"
    assert [step["id"] for step in record["path"]] == [
        "neoplasm", "keratinocytic_neoplasm", "benign_keratosis", "seborrheic_keratosis"]
    assert "irritated_seborrheic_keratosis" in [child["id"] for child in record["children"]]


# -- label mappings and label sets --------------------------------------------------------------

@pytest.mark.parametrize(("source", "codes"), [("ham10000", HAM_CODES), ("pad-ufes-20", PAD_CODES),
                                               ("isic", ISIC_CODES)])
def test_map_label_for_coded_sources(source: str, codes: dict[str, str]) -> None:
    assert {code: ONT.map_label(source, code) for code in codes} == codes
    assert {code: ONT.map_label(source, code.lower()) for code in codes} == codes


def test_isic_unknown_class_sits_outside_every_disease_branch() -> None:
    assert ONT.conditions.get("unknown_or_other").parent is None
    assert ONT.conditions.children("unknown_or_other") == []


def test_every_ddi_disease_resolves() -> None:
    assert len(DDI_DISEASES) == 78
    mapped = {d: ONT.map_label("ddi", d) for d in DDI_DISEASES}
    assert mapped["seborrheic-keratosis-irritated"] == "irritated_seborrheic_keratosis"
    assert mapped["nodular-melanoma-(nm)"] == "nodular_melanoma"
    assert mapped["melanoma-in-situ"] == "melanoma_in_situ"
    assert mapped["wart"] == "verruca"


def test_every_scin_condition_resolves() -> None:
    mapped = {name: ONT.map_label("scin", name) for name in SCIN_CONDITIONS}
    assert mapped["SK/ISK"] == "seborrheic_keratosis"
    assert mapped["CD - Contact dermatitis"] == "contact_dermatitis"
    assert mapped["O/E - ecchymoses present"] == "purpura"


def test_every_fitzpatrick17k_label_resolves(fitzpatrick17k_dir: Path) -> None:
    labels = pd.read_csv(fitzpatrick17k_dir / "fitzpatrick17k.csv", usecols=["label"])["label"].unique()
    assert len(labels) == 114
    mapped = {label: ONT.map_label("fitzpatrick17k", label) for label in labels}
    assert mapped["acquired autoimmune bullous diseaseherpes gestationis"] == "pemphigoid_gestationis"
    assert mapped["malignant melanoma"] == mapped["melanoma"] == "melanoma"


def test_unknown_label_raises_naming_the_source() -> None:
    with pytest.raises(UnknownTermError, match="ddi label"):
        ONT.map_label("ddi", "not-a-disease-at-all")


def test_ddx26_label_set_matches_the_published_names_in_order() -> None:
    assert ONT.label_set("ddx26") == [ONT.conditions.get(name).id for name in DDX26_NAMES]


@pytest.mark.parametrize(("name", "codes"), [("ham10000", HAM_CODES), ("pad-ufes-20", PAD_CODES)])
def test_source_label_sets_cover_exactly_their_codes(name: str, codes: dict[str, str]) -> None:
    assert sorted(ONT.label_set(name)) == sorted(set(codes.values()))


def test_isic2019_label_set_follows_the_challenge_column_order() -> None:
    order = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    assert ONT.label_set("isic2019") == [ISIC_CODES[code] for code in order]


def test_unknown_label_set_lists_the_known_ones() -> None:
    with pytest.raises(UnknownTermError, match="ddx26"):
        ONT.label_set("ddx27")


# -- body sites and symptoms --------------------------------------------------------------------

@pytest.mark.parametrize("value", HAM_SITES + PAD_SITES + SCIN_SITES + ISIC_SITES)
def test_every_source_body_site_resolves(value: str) -> None:
    assert ONT.body_sites.find(value) is not None


def test_body_site_decisions() -> None:
    sites = ONT.body_sites
    assert sites.get("ARM").id == sites.get("upper extremity").id == "upper_extremity"
    assert sites.parent("FOREARM").id == "upper_extremity"
    assert sites.parent("FOOT_SOLE").id == "acral"
    assert sites.get("TORSO_BACK").id == "back"
    assert sites.get("armpit").id == "axilla"
    assert sites.parent("cheek").id == "face"
    # ISIC's eight general sites stay eight distinct nodes.
    assert len({sites.get(value).id for value in ISIC_SITES[:8]}) == 8


@pytest.mark.parametrize(("column", "symptom"), [
    ("itch", "itch"), ("grew", "growth"), ("hurt", "pain"), ("changed", "change"), ("bleed", "bleeding"),
    ("elevation", "elevation"),
    ("bothersome_appearance", "bothersome_appearance"), ("bleeding", "bleeding"), ("increasing_size", "growth"),
    ("darkening", "darkening"), ("itching", "itch"), ("burning", "burning"), ("pain", "pain"),
    ("fever", "fever"), ("chills", "chills"), ("fatigue", "fatigue"), ("joint_pain", "joint_pain"),
    ("mouth_sores", "mouth_sores"), ("shortness_of_breath", "shortness_of_breath"),
])
def test_pad_and_scin_symptom_columns_resolve(column: str, symptom: str) -> None:
    assert ONT.symptoms.get(column.replace("_", " ")).id == symptom


# -- Derm1M ontology.json -----------------------------------------------------------------------

def _derm1m_json(tmp_path: Path) -> Path:
    path = tmp_path / "ontology.json"
    path.write_text(json.dumps({
        "Skin disease": ["Inflammatory", "Neoplastic"],
        "Inflammatory": ["Eczema"],
        "Eczema": ["Atopic dermatitis"],
        "Neoplastic": ["Melanoma"],
    }))
    return path


def test_derm1m_json_builds_a_hierarchy(tmp_path: Path) -> None:
    conditions = Hierarchy.from_derm1m_json(_derm1m_json(tmp_path))
    assert [n.id for n in conditions.roots()] == ["skin_disease"]
    assert [n.id for n in conditions.path("atopic dermatitis")] == [
        "skin_disease", "inflammatory", "eczema", "atopic_dermatitis"]
    assert conditions.level("Atopic Dermatitis") == 4
    assert conditions.lowest_common_ancestor("Atopic dermatitis", "Melanoma").id == "skin_disease"


def test_load_ontology_swaps_in_derm1m_conditions_and_drops_shipped_tables(tmp_path: Path) -> None:
    ontology = load_ontology(_derm1m_json(tmp_path))
    assert len(ontology.conditions) == 6
    assert ontology.mappings == {} and ontology.label_sets == {}
    assert ontology.body_sites.find("palm") is not None


def test_derm1m_json_with_two_parents_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"A": ["C"], "B": ["C"]}))
    with pytest.raises(ValueError, match="two parents"):
        Hierarchy.from_derm1m_json(path)


def test_normalize_term() -> None:
    assert normalize_term("  Café-au-Lait  Macule!") == "cafe au lait macule"


def test_dermatology_rankings_names_map_only_where_a_condition_is_the_same() -> None:
    mapped = {name: ONT.map_label("dermatology-rankings", name) for name in (
        "Burn of skin", "Venous Stasis Ulcer", "IgA pemphigus", "Cicatricial Pemphigoid",
        "Arteriovenous malformation", "Lymphedema", "O/E - ecchymoses present")}
    assert mapped == {"Burn of skin": "burn", "Venous Stasis Ulcer": "venous_ulcer", "IgA pemphigus": "pemphigus",
                      "Cicatricial Pemphigoid": "mucous_membrane_pemphigoid",
                      "Arteriovenous malformation": "arteriovenous_malformation", "Lymphedema": "lymphedema",
                      "O/E - ecchymoses present": "purpura"}
    # A merged class, a finding that is a concept, and "Healthy" are listed as unmapped, not guessed.
    for name in ("Morphea/Scleroderma", "Comedone", "Healthy", "Pearly penile papules"):
        with pytest.raises(UnknownTermError):
            ONT.map_label("dermatology-rankings", name)
