"""Model cards from evaluation: the test results, per-group table and limitations in the model's README.md.

The figures are the metric collection's (:mod:`dermkit.evaluate.metrics.collection`), the same dict
``eval classifier --json`` prints and a suite records, so a card never disagrees with a run. The
card is the Hugging Face model-card format (``huggingface_hub.ModelCard``): the figures go into the
YAML front matter under ``dermkit_evaluation`` and, as tables, into one section of the body between
two markers. Everything training wrote stays; re-running replaces that section instead of adding a
second one. Limitations are read from what training recorded in the card (``training_cases``: the
acquisition and skin-type mix of the training split) and from the per-group results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dermkit.core.atomic import atomic_write_text
from dermkit.core.errors import InputError
from dermkit.models.card import RESEARCH_ONLY

CARD_FILE = "README.md"
FRONT_MATTER_KEY = "dermkit_evaluation"
START = "<!-- dermkit:evaluation:start -->"
END = "<!-- dermkit:evaluation:end -->"
GROUP_TITLES = {"fitzpatrick": "Fitzpatrick", "monk": "Monk", "sex": "Sex", "age": "Age band"}
# Names used in limitations; the strata module's group keys use ASCII hyphens.
SCARCE_IN_TRAINING = 10  # fewer training cases of a skin-type group than this is worth a limitation
FITZPATRICK_NAMES = {"I-II": "Fitzpatrick I–II", "III-IV": "Fitzpatrick III–IV", "V-VI": "Fitzpatrick V–VI"}


def table_data(table: str | Path, splits: Sequence[str]) -> dict[str, Any]:
    """What a case table says about itself for a card: its source, licence and the splits scored."""
    from dermkit.data.table import read_manifest

    manifest = read_manifest(table)
    return {"name": str(manifest.get("source") or Path(table).name), "table": str(table), "split": list(splits),
            "license": str(manifest.get("licence") or "unknown")}


def source_data(source: str, split: str | None) -> dict[str, Any]:
    """The card's data entry for predictions of a named source (a suite's dataset): its importer's licence."""
    from dermkit.data.importers import IMPORTERS

    importer = IMPORTERS.get(source)
    return {"name": source, "split": [split] if split else [],
            "license": str(getattr(importer, "licence", None) or "unknown")}


def _ci(entry: Mapping[str, Any] | None) -> tuple[str, str]:
    if not entry or entry.get("estimate") is None:
        return "undefined", ""
    low, high = entry.get("low"), entry.get("high")
    return f"{entry['estimate']:.3f}", "" if low is None or high is None else f"{low:.3f} – {high:.3f}"


def _metrics_table(metrics: Mapping[str, Any]) -> list[str]:
    lines = ["| metric | estimate | 95 % CI |", "|---|---|---|"]
    for name, entry in metrics.items():
        estimate, interval = _ci(entry)
        lines.append(f"| {name} | {estimate} | {interval} |")
    return lines


def _group_table(strata: Mapping[str, Any]) -> list[str]:
    """One row per (field, metric, group) with its size; groups too small to score keep their size."""
    lines = ["| group | metric | stratum | n | estimate | 95 % CI | in gap |", "|---|---|---|---|---|---|---|"]
    gaps = []
    for field, by_metric in strata.items():
        for metric, block in by_metric.items():
            for row in block["rows"]:
                estimate, interval = _ci(row)
                lines.append(f"| {GROUP_TITLES.get(field, field)} | {metric} | {row['stratum']} | {row['n']} | "
                             f"{estimate} | {interval} | {'yes' if row['eligible'] else 'no'} |")
            gap = block["gap"]
            if gap.get("estimate") is not None:
                estimate, interval = _ci(gap)
                gaps.append(f"- {GROUP_TITLES.get(field, field)}, {metric}: largest gap {estimate} "
                            f"(95 % CI {interval}) between {gap['best']} and {gap['worst']}")
    return lines + ([""] + gaps if gaps else [])


def limitations(training: Mapping[str, Any] | None, result: Mapping[str, Any], uses_images: bool = True) -> list[str]:
    """Plain statements of what the training data lacked and which test groups were too small.

    The acquisition statement is made only for a model that reads images (a history-only model's
    training photographs say nothing about what it can see).
    """
    notes = []
    if not training:
        notes.append("The model folder records no training-data composition; its coverage of acquisition types "
                     "and skin types is unknown.")
    else:
        acquisition = {k: v for k, v in (training.get("acquisition") or {}).items() if v}
        known = {k: v for k, v in acquisition.items() if k != "unknown"}
        if uses_images and len(known) == 1 and "unknown" not in acquisition:
            only = next(iter(known))
            notes.append(f"Trained on {'dermoscopy' if only == 'dermoscopic' else only + ' photographs'} only: "
                         "other acquisition types are outside its training data.")
        fitzpatrick = training.get("fitzpatrick") or {}
        if not any(fitzpatrick.get(group) for group in FITZPATRICK_NAMES):
            notes.append("Fitzpatrick skin type is not recorded for the training data.")
        else:
            for group, name in FITZPATRICK_NAMES.items():
                count = fitzpatrick.get(group, 0)
                if not count:
                    notes.append(f"{name} absent from training.")
                elif count < SCARCE_IN_TRAINING:
                    notes.append(f"{name}: only {count} of {training.get('n', '?')} training cases.")
    for field, by_metric in (result.get("strata") or {}).items():
        block = next(iter(by_metric.values()), None)
        for row in block["rows"] if block else []:
            if not row["eligible"] and row["stratum"] != "unknown":
                title = FITZPATRICK_NAMES.get(row["stratum"]) if field == "fitzpatrick" else None
                title = title or f"{GROUP_TITLES.get(field, field)} {row['stratum']}"
                notes.append(f"{title}: no test case." if not row["n"] else
                             f"{title}: {row['n']} test cases, too few (or undefined) to score; not in the gap.")
    notes.append(RESEARCH_ONLY)
    return notes


def evaluation_section(result: Mapping[str, Any], data: Mapping[str, Any],
                       training: Mapping[str, Any] | None, uses_images: bool = True) -> str:
    """The card's evaluation section (between the markers), from the collection's result."""
    split = data.get("split")
    lines = [START, "## Evaluation", "",
             f"Scored on **{data.get('name', 'unknown')}**"
             + (f" (split {' + '.join(split) if isinstance(split, list) else split})" if split else "")
             + f", licence: {data.get('license', 'unknown')}; {result['n']} cases, 95 % intervals from "
               f"{result['n_boot']} bootstrap resamples of {result['resampled_by']}s.", ""]
    if result.get("reference") == "differential":
        lines += [("Top-k accuracy is against the aggregated reference differential: correct at k when the "
                  "reference's top condition is in the model's top k."), ""]
    lines += ["### Test results", "", *_metrics_table(result["metrics"]), ""]
    if result.get("strata"):
        lines += ["### Per-group results", "", *_group_table(result["strata"]), ""]
    lines += ["### Limitations", "", *[f"- {note}" for note in limitations(training, result, uses_images)], "", END]
    return "\n".join(lines)


def _replace_section(text: str, section: str) -> str:
    if START in text and END in text:
        head, rest = text.split(START, 1)
        return head + section + rest.split(END, 1)[1]
    return text.rstrip("\n") + "\n\n" + section + "\n"


def write_evaluation_card(model_dir: str | Path, result: Mapping[str, Any], data: Mapping[str, Any]) -> Path:
    """Write ``result`` (from :func:`score_predictions`) into ``model_dir/README.md``; return its path.

    Training's front matter and prose are kept; only the evaluation section and the
    ``dermkit_evaluation`` front-matter entry are (re)written.
    """
    from huggingface_hub import ModelCard

    path = Path(model_dir) / CARD_FILE
    if not Path(model_dir).is_dir():
        raise InputError("not a model directory", file=model_dir)
    card = ModelCard.load(path) if path.exists() else ModelCard(f"---\nmodel_id: {Path(model_dir).name}\n---\n")
    front = card.data.to_dict()
    results = front.get("results") or {}
    training = results.get("training_cases") if isinstance(results, dict) else None
    uses_images = (front.get("inputs") or {}).get("images", "") != "none"
    figures = {key: result[key] for key in ("n", "reference", "resampled_by", "level", "n_boot", "metrics", "strata")
               if key in result}
    setattr(card.data, FRONT_MATTER_KEY, {"data": dict(data), **figures})
    card.text = _replace_section(card.text, evaluation_section(result, data, training, uses_images))
    atomic_write_text(path, str(card))
    return path
