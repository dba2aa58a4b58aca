"""Model cards: the README.md of an export, YAML front matter a program reads plus prose a person reads.

A card travels with the weights so whoever loads a model learns what it was trained on, under which
licences, how it scored, and that it is a research tool, not a diagnostic device.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from dermkit import __version__
from dermkit.core.errors import InputError
from dermkit.data.schema import FITZPATRICK_GROUPS
from dermkit.ontology import default_ontology

RESEARCH_ONLY = (
    "Research use only. This model is not a medical device and must not be used for diagnosis, "
    "treatment decisions or any other clinical purpose."
)
# Licence names the importers record, as the Hub's licence ids.
HUB_LICENSE_IDS = {"CC0": "cc0-1.0", "CC BY 4.0": "cc-by-4.0", "CC BY-NC 4.0": "cc-by-nc-4.0",
                   "CC BY-NC-SA 3.0": "cc-by-nc-sa-3.0", "CC BY-NC-SA 4.0": "cc-by-nc-sa-4.0"}
DEFAULT_INTENDED_USE = (
    "Research on dermatology image and text representations: zero-shot classification, retrieval, "
    "linear probing and fine-tuning experiments."
)


@dataclass
class ModelCard:
    """What an export says about itself. ``inputs`` is filled from the model at export time.

    ``classes`` are the model's output labels (in order) when it has a fixed class list; the card
    records the ontology id of each so results stay comparable across label spellings.
    """

    model_id: str
    description: str = ""
    intended_use: str = DEFAULT_INTENDED_USE
    base_model: str = ""
    license: str = "apache-2.0"
    classes: list[str] = field(default_factory=list)
    training_data: list[dict[str, str]] = field(default_factory=list)  # {"name": ..., "license": ...}
    results: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    # How training computed (dermkit.core.precision): empty on cards of models dermkit did not train.
    precision: str = ""
    cpu_capability: str = ""
    created: str = field(default_factory=lambda: _dt.date.today().isoformat())
    dermkit_version: str = __version__

    def front_matter(self) -> dict[str, Any]:
        """The machine-readable part, with the research-only statement and class ontology ids."""
        data = asdict(self)
        data["out_of_scope_use"] = RESEARCH_ONLY
        data["classes"] = _class_entries(self.classes)
        data["library_name"] = "open_clip"
        return data

    def to_markdown(self) -> str:
        """The whole README.md: YAML front matter, then a short human-readable summary."""
        head = yaml.safe_dump(self.front_matter(), sort_keys=False, allow_unicode=True)
        lines = [f"---\n{head}---", f"# {self.model_id}", ""]
        if self.description:
            lines += [self.description, ""]
        lines += ["## Intended use", "", self.intended_use, "", f"**{RESEARCH_ONLY}**", ""]
        if self.inputs:
            lines += ["## Inputs", "", *[f"- {key}: {value}" for key, value in self.inputs.items()], ""]
        if self.classes:
            lines += ["## Classes", "", *[f"- {entry['name']} ({entry['ontology_id'] or 'no ontology id'})"
                                          for entry in _class_entries(self.classes)], ""]
        if self.training_data:
            lines += ["## Training data", "",
                      *[f"- {item.get('name', '?')} (licence: {item.get('license', 'unknown')})"
                        for item in self.training_data], ""]
        if self.precision:
            lines += ["## Training precision", "", f"{self.precision} (CPU capability {self.cpu_capability})", ""]
        if self.results:
            lines += ["## Results", "", "```yaml", yaml.safe_dump(self.results, sort_keys=False).rstrip(), "```", ""]
        lines += [f"Created {self.created} with dermkit {self.dermkit_version}.", ""]
        return "\n".join(lines)

    @classmethod
    def from_markdown(cls, text: str, source: str | Path | None = None) -> ModelCard:
        """Read a card back from a README.md written by :meth:`to_markdown`."""
        if not text.startswith("---\n"):
            raise InputError("model card has no YAML front matter", file=source)
        head, sep, _ = text[4:].partition("\n---")
        if not sep:
            raise InputError("model card front matter is not closed by '---'", file=source)
        data = yaml.safe_load(head) or {}
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["classes"] = [entry["name"] if isinstance(entry, dict) else entry for entry in data.get("classes", [])]
        if "model_id" not in values:
            raise InputError("model card front matter lacks model_id", file=source)
        return cls(**values)

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        return cls.from_markdown(Path(path).read_text(encoding="utf-8"), source=path)


def training_data_entries(manifests: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One card entry per training table: its source and licence as its manifest records them."""
    return [{"name": str(m.get("source") or Path(m["table"]).name), "license": str(m.get("licence") or "unknown")}
            for m in manifests]


def case_composition(cases: Any) -> dict[str, Any]:
    """The training split's mix that a card's limitations are read from: case count, cases per
    acquisition type and per Fitzpatrick group (``unknown`` where a case does not record it)."""
    acquisition: dict[str, int] = {}
    fitzpatrick = dict.fromkeys([*FITZPATRICK_GROUPS, "unknown"], 0)
    for case in cases:
        kind = case.acquisition or "unknown"
        acquisition[kind] = acquisition.get(kind, 0) + 1
        group = next((name for name, types in FITZPATRICK_GROUPS.items() if case.fitzpatrick in types), "unknown")
        fitzpatrick[group] += 1
    return {"n": sum(acquisition.values()), "acquisition": acquisition, "fitzpatrick": fitzpatrick}


def license_of_trained_weights(training_data: list[dict[str, str]]) -> str:
    """The card's ``license`` for weights trained on these tables.

    Weights trained on CC BY-NC data (HAM10000, Derm1M) must not claim a permissive licence, so the
    card takes the data's own licence when every table shares one the Hub knows, and ``other``
    otherwise (mixed or unrecognised terms; the training-data list names each).
    """
    licences = {entry.get("license", "unknown") for entry in training_data}
    only = licences.pop() if len(licences) == 1 else None
    return HUB_LICENSE_IDS.get(only or "", "other")


def _class_entries(labels: list[str]) -> list[dict[str, str | None]]:
    """Each class label with the ontology id it resolves to (None when the ontology lacks it)."""
    conditions = default_ontology().conditions
    entries = []
    for label in labels:
        node = conditions.find(label)
        entries.append({"name": label, "ontology_id": None if node is None else node.id})
    return entries
