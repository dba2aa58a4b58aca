"""The contributor questionnaire, in SCIN's own vocabulary, and its validation.

Answers are stored with SCIN's codes (``AGE_30_TO_39``, ``FST3``, ``body_parts_arm`` suffixes, ...)
so the SCIN export writes them verbatim and dermkit's ``scin`` importer reads them back; the
case-table view of an answer (age in years, ontology ids) is derived here, in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dermkit.core.errors import InputError
from dermkit.ontology import default_ontology

# The consent text shown to contributors; bump the version whenever the text changes, so every
# case records which text its contributor accepted.
CONSENT_VERSION = "2026-11-v1"
CONSENT_TEXT = (
    "I am 18 or older. I agree that the photos and answers I submit are stored and used to build a "
    "dermatology research dataset, that dermatologists and trained graders will look at them, and "
    "that they may be shared with researchers without my name or contact details. I will not submit "
    "photos that show my face or identifying marks. I can withdraw my contribution at any time with "
    "the receipt code I am given; it then is deleted and left out of later exports."
)

# code → label shown on the form; dict order is the form's and the export's column order.
AGE_GROUPS = {
    "AGE_18_TO_29": "18–29", "AGE_30_TO_39": "30–39", "AGE_40_TO_49": "40–49", "AGE_50_TO_59": "50–59",
    "AGE_60_TO_69": "60–69", "AGE_70_TO_79": "70–79", "AGE_80_OR_ABOVE": "80 or above",
    "AGE_UNKNOWN": "Prefer not to say",
}
SEXES = {"FEMALE": "Female", "MALE": "Male", "OTHER_OR_UNSPECIFIED": "Other or prefer not to say"}
SELF_FST = {
    "FST1": "I – always burns, never tans", "FST2": "II – usually burns, tans minimally",
    "FST3": "III – sometimes burns, tans uniformly", "FST4": "IV – burns minimally, always tans",
    "FST5": "V – very rarely burns, tans very easily", "FST6": "VI – never burns",
    "NONE_SELECTED": "I don't know",
}
RACES = {
    "american_indian_or_alaska_native": "American Indian or Alaska Native", "asian": "Asian",
    "black_or_african_american": "Black or African American",
    "hispanic_latino_or_spanish_origin": "Hispanic, Latino or Spanish origin",
    "middle_eastern_or_north_african": "Middle Eastern or North African",
    "native_hawaiian_or_pacific_islander": "Native Hawaiian or Pacific Islander", "white": "White",
    "other_race": "Another race or ethnicity", "prefer_not_to_answer": "Prefer not to answer",
}
TEXTURES = {"raised_or_bumpy": "Raised or bumpy", "flat": "Flat", "rough_or_flaky": "Rough or flaky",
            "fluid_filled": "Filled with fluid"}
BODY_PARTS = {
    "head_or_neck": "Head or neck", "arm": "Arm", "palm": "Palm", "back_of_hand": "Back of hand",
    "torso_front": "Front of torso", "torso_back": "Back of torso", "genitalia_or_groin": "Genitalia or groin",
    "buttocks": "Buttocks", "leg": "Leg", "foot_top_or_side": "Top or side of foot", "foot_sole": "Sole of foot",
    "other": "Other",
}
CONDITION_SYMPTOMS = {
    "bothersome_appearance": "Bothersome appearance", "bleeding": "Bleeding", "increasing_size": "Growing",
    "darkening": "Darkening", "itching": "Itching", "burning": "Burning", "pain": "Pain",
    "no_relevant_experience": "None of these",
}
OTHER_SYMPTOMS = {
    "fever": "Fever", "chills": "Chills", "fatigue": "Fatigue", "joint_pain": "Joint pain",
    "mouth_sores": "Mouth sores", "shortness_of_breath": "Shortness of breath",
    "no_relevant_symptoms": "None of these",
}
NONE_OF_THESE = {"condition_symptoms": "no_relevant_experience", "other_symptoms": "no_relevant_symptoms"}
DURATIONS = {
    "LESS_THAN_ONE_DAY": "Less than a day", "ONE_DAY": "One day", "TWO_TO_SEVEN_DAYS": "2–7 days",
    "ONE_TO_FOUR_WEEKS": "1–4 weeks", "ONE_TO_THREE_MONTHS": "1–3 months",
    "THREE_TO_TWELVE_MONTHS": "3–12 months", "MORE_THAN_ONE_YEAR": "More than a year",
    "MORE_THAN_FIVE_YEARS": "More than five years", "SINCE_CHILDHOOD": "Since childhood", "UNKNOWN": "I don't know",
}
SHOT_TYPES = {"CLOSE_UP": "Close-up", "AT_AN_ANGLE": "At an angle", "AT_DISTANCE": "From a distance"}

SINGLE_CHOICES: dict[str, dict[str, str]] = {
    "age_group": AGE_GROUPS, "sex_at_birth": SEXES, "fitzpatrick_skin_type": SELF_FST,
    "condition_duration": DURATIONS,
}
MULTI_CHOICES: dict[str, dict[str, str]] = {
    "race_ethnicity": RACES, "textures": TEXTURES, "body_parts": BODY_PARTS,
    "condition_symptoms": CONDITION_SYMPTOMS, "other_symptoms": OTHER_SYMPTOMS,
}
# SCIN's "no answer" codes: stored as given, read as missing (as the scin importer does).
UNANSWERED = frozenset({"AGE_UNKNOWN", "OTHER_OR_UNSPECIFIED", "NONE_SELECTED", "UNKNOWN"})


@dataclass
class Answers:
    """One contributor's answers, as SCIN codes (single choices) and flag suffixes (multi choices)."""

    age_group: str | None = None
    sex_at_birth: str | None = None
    fitzpatrick_skin_type: str | None = None
    condition_duration: str | None = None
    race_ethnicity: list[str] = field(default_factory=list)
    textures: list[str] = field(default_factory=list)
    body_parts: list[str] = field(default_factory=list)
    condition_symptoms: list[str] = field(default_factory=list)
    other_symptoms: list[str] = field(default_factory=list)


def parse_answers(single: Mapping[str, str | None], multi: Mapping[str, Sequence[str]]) -> Answers:
    """Validate form answers; an unknown code is an :class:`InputError` naming its field."""
    values: dict[str, object] = {}
    for name, choices in SINGLE_CHOICES.items():
        value = (single.get(name) or "").strip() or None
        if value is not None and value not in choices:
            raise InputError(f"{value!r} is not one of {list(choices)}", field=name)
        values[name] = value
    for name, choices in MULTI_CHOICES.items():
        given = [v.strip() for v in multi.get(name, ()) if v and v.strip()]
        unknown = [v for v in given if v not in choices]
        if unknown:
            raise InputError(f"{unknown[0]!r} is not one of {list(choices)}", field=name)
        chosen = [code for code in choices if code in given]  # canonical order, no repeats
        if name in NONE_OF_THESE and NONE_OF_THESE[name] in chosen and len(chosen) > 1:
            raise InputError("'none of these' cannot be ticked together with a symptom", field=name)
        values[name] = chosen
    return Answers(**values)  # type: ignore[arg-type]


def parse_shot_type(value: str | None, field_name: str) -> str | None:
    value = (value or "").strip() or None
    if value is not None and value not in SHOT_TYPES:
        raise InputError(f"{value!r} is not one of {list(SHOT_TYPES)}", field=field_name)
    return value


# -- the case-table view of the answers (what the scin importer derives from the same codes) ----

def answered(code: str | None) -> str | None:
    """``None`` for SCIN's no-answer codes."""
    return None if code is None or code in UNANSWERED else code


def age_years(age_group: str | None) -> float | None:
    """Midpoint of a bounded age group (``AGE_30_TO_39`` → 34.5); open or unknown groups → None."""
    code = answered(age_group)
    if code is None or code == "AGE_80_OR_ABOVE":
        return None
    low, high = code.removeprefix("AGE_").split("_TO_")
    return (int(low) + int(high)) / 2


def sex(sex_at_birth: str | None) -> str | None:
    code = answered(sex_at_birth)
    return None if code is None else code.lower()


def fitzpatrick_number(code: str | None) -> int | None:
    """``FST3`` → 3."""
    code = answered(code)
    return None if code is None else int(code.removeprefix("FST"))


def body_site_ids(body_parts: Sequence[str]) -> list[str]:
    ontology = default_ontology()
    return [ontology.body_sites.find(part.replace("_", " ")).id for part in body_parts]  # type: ignore[union-attr]


def symptom_ids(answers: Answers) -> list[str] | None:
    """Ontology symptom ids; [] when only 'none of these' was ticked; None when nothing was."""
    ticked = answers.condition_symptoms + answers.other_symptoms
    if not ticked:
        return None
    ontology = default_ontology()
    return [ontology.symptoms.find(code.replace("_", " ")).id  # type: ignore[union-attr]
            for code in ticked if code not in NONE_OF_THESE.values()]


def duration_words(code: str | None) -> str | None:
    """``ONE_TO_FOUR_WEEKS`` → ``one to four weeks``."""
    code = answered(code)
    return None if code is None else code.lower().replace("_", " ")


def combined_race(races: Sequence[str]) -> str | None:
    """One race code, ``TWO_OR_MORE`` or None (SCIN's summary column)."""
    chosen = [r for r in races if r != "prefer_not_to_answer"]
    if not chosen:
        return None
    return chosen[0].upper() if len(chosen) == 1 else "TWO_OR_MORE"
