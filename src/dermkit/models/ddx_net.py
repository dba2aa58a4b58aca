"""The differential-diagnosis network (Liu et al., Nat. Med. 2020): images + metadata → ranked conditions.

One image trunk is shared by a case's 1–6 images; their embeddings are pooled (mean or attention,
masked so a case with fewer images is not diluted by padding). A metadata encoder turns the case
table's fields into one vector (numbers with missing indicators, embeddings of sex, body site and
skin type, tri-state yes/no/unknown flags); it is joined to the pooled image vector before the
classifier. Either side may be absent, which gives the image-only and the history-only baselines.

The label space comes from the ontology: the chosen conditions plus ``other``; a case's diagnosis
that is a descendant of a chosen condition counts as that condition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from dermkit.core.errors import InputError
from dermkit.ontology import Ontology, default_ontology

OTHER = "other"
SEXES = ("female", "male", "other")  # the case schema's vocabulary
FITZPATRICK = ("1", "2", "3", "4", "5", "6")
SITE_LEVEL = 2  # body sites are folded to this level of the ontology (e.g. "cheek" → "face")
AGE_RANGE = (0.0, 120.0)
POOLINGS = ("mean", "attention")
_FLAG_VALUES: dict[bool | None, float] = {True: 1.0, False: -1.0, None: 0.0}  # a history answer: yes, no, not given


# -- label space -------------------------------------------------------------------------------

@dataclass
class LabelSpace:
    """Output classes (ontology ids, ``other`` last when kept) and an optional coarser auxiliary level."""

    classes: list[str]
    other: bool = True
    aux_level: int | None = None

    @classmethod
    def build(cls, labels: str | Sequence[str], other: bool = True, aux_level: int | None = None,
              ontology: Ontology | None = None) -> LabelSpace:
        """``labels`` is a label-set name (``ddx26``, ``ham10000``, ...) or condition names/ids."""
        ontology = ontology or default_ontology()
        ids = ontology.label_set(labels) if isinstance(labels, str) else [ontology.conditions.get(x).id for x in labels]
        if len(set(ids)) != len(ids):
            raise InputError(f"labels repeat a condition: {ids}", field="labels")
        if len(ids) + other < 2:
            raise InputError("a classifier needs two classes: name two conditions or keep 'other'", field="labels")
        return cls([*ids, OTHER] if other else ids, other, aux_level)

    @property
    def chosen(self) -> list[str]:
        return [c for c in self.classes if c != OTHER] if self.other else list(self.classes)

    def index_of(self, condition: str, ontology: Ontology | None = None) -> int | None:
        """The class of a condition id: itself or its nearest chosen ancestor, else ``other`` (or None)."""
        conditions = (ontology or default_ontology()).conditions
        chosen = {c: i for i, c in enumerate(self.chosen)}
        node = conditions.find(condition)
        path = [] if node is None else [n.id for n in reversed(conditions.path(node.id))]
        for candidate in path:
            if candidate in chosen:
                return chosen[candidate]
        return len(self.classes) - 1 if self.other else None

    def target(self, differential: Mapping[str, float] | None) -> np.ndarray | None:
        """Soft target over the classes from a weighted differential; None when nothing maps."""
        if not differential:
            return None
        out = np.zeros(len(self.classes), dtype=np.float32)
        for condition, weight in differential.items():
            index = self.index_of(condition)
            if index is not None:
                out[index] += float(weight)
        total = out.sum()
        return out / total if total > 0 else None

    def outside(self, differentials: Sequence[Mapping[str, float] | None]) -> dict[str, Any]:
        """The labelled cases none of whose conditions is a chosen class, and how they were counted.

        They count as ``other`` when the space keeps it, else they are excluded from scoring; either
        way the report names them (by each case's main condition) so none is dropped silently.
        Conditions below a chosen class count as that class (seborrheic keratosis as benign keratosis).
        """
        chosen = set(range(len(self.chosen)))
        labels: dict[str, int] = {}
        for differential in differentials:
            if not differential or any(self.index_of(c) in chosen for c in differential):
                continue
            main = max(differential, key=lambda condition: differential[condition])
            labels[main] = labels.get(main, 0) + 1
        count = sum(labels.values())
        return {"cases": count, "labels": dict(sorted(labels.items(), key=lambda item: (-item[1], item[0]))),
                "counted_as": OTHER if self.other else "excluded", "excluded": 0 if self.other else count}

    def aux_classes(self, ontology: Ontology | None = None) -> list[str]:
        return list(dict.fromkeys(self._aux_of(ontology)))

    def aux_matrix(self, ontology: Ontology | None = None) -> np.ndarray:
        """Classes × auxiliary-classes 0/1 matrix: ``target @ M`` is the coarse target."""
        parents = self._aux_of(ontology)
        columns = list(dict.fromkeys(parents))
        matrix = np.zeros((len(self.classes), len(columns)), dtype=np.float32)
        for row, parent in enumerate(parents):
            matrix[row, columns.index(parent)] = 1.0
        return matrix

    def _aux_of(self, ontology: Ontology | None) -> list[str]:
        if self.aux_level is None:
            return []
        conditions = (ontology or default_ontology()).conditions
        return [OTHER if c == OTHER else conditions.at_level(c, self.aux_level).id for c in self.classes]


# -- metadata ----------------------------------------------------------------------------------

@dataclass
class MetadataSpec:
    """Which case fields the model reads, and how: fitted on the training cases, saved with the model.

    Numbers (age, measurements) are standardised with the training mean and std and come with a
    missing indicator. Flags are history answers and reported symptoms, keyed by symptom id when
    the ontology knows the name (``hurt`` → ``pain``), each yes (+1), no (-1) or unknown (0).
    """

    numeric: list[str] = field(default_factory=lambda: ["age"])
    mean: list[float] = field(default_factory=lambda: [50.0])
    std: list[float] = field(default_factory=lambda: [20.0])
    flags: list[str] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, cases: Sequence[Any], ontology: Ontology | None = None) -> MetadataSpec:
        ontology = ontology or default_ontology()
        numeric = ["age", *sorted({k for c in cases for k in (c.measurements or {})})]
        columns = [[v for c in cases if (v := _number(c, name)) is not None] for name in numeric]
        mean = [float(np.mean(v)) if v else 0.0 for v in columns]
        std = [(float(np.std(v)) or 1.0) if v else 1.0 for v in columns]
        flags = sorted({key for case in cases for key in _flags(case, ontology)})
        sites = [n.id for n in ontology.body_sites if n.level <= SITE_LEVEL]
        return cls(numeric, mean, std, flags, sites)

    @property
    def n_numeric(self) -> int:
        return len(self.numeric)

    def encode(self, case: Any, ontology: Ontology | None = None) -> dict[str, np.ndarray]:
        """One case (anything with the case table's attribute names) → model inputs."""
        ontology = ontology or default_ontology()
        values = [_number(case, name) for name in self.numeric]
        numeric = np.array([0.0 if v is None else (v - m) / s for v, m, s in zip(values, self.mean, self.std,
                                                                                   strict=True)], np.float32)
        present = np.array([v is not None for v in values], np.float32)
        answers = _flags(case, ontology)
        flags = np.array([_FLAG_VALUES[answers.get(k)] for k in self.flags], np.float32)
        site = 0
        if getattr(case, "body_site", None):
            node = ontology.body_sites.find(case.body_site)
            folded = None if node is None else ontology.body_sites.at_level(node.id, SITE_LEVEL).id
            site = self.sites.index(folded) + 1 if folded in self.sites else 0
        sex = SEXES.index(case.sex) + 1 if getattr(case, "sex", None) in SEXES else 0
        skin = getattr(case, "fitzpatrick", None)
        categorical = np.array([sex, site, int(skin) if skin is not None and skin in range(1, 7) else 0], np.int64)
        return {"numeric": numeric, "present": present, "flags": flags, "categorical": categorical}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(case: Any, name: str) -> float | None:
    value = getattr(case, name, None) if name == "age" else (getattr(case, "measurements", None) or {}).get(name)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _flags(case: Any, ontology: Ontology) -> dict[str, bool]:
    """History answers and symptoms, one key per ontology symptom where the name resolves."""
    answers: dict[str, bool] = {}
    for key, value in (getattr(case, "history", None) or {}).items():
        node = ontology.symptoms.find(key)
        answers[node.id if node is not None else key] = bool(value)
    for symptom in getattr(case, "symptoms", None) or []:
        node = ontology.symptoms.find(symptom)
        answers[node.id if node is not None else symptom] = True
    return answers


def collate_metadata(encoded: Sequence[Mapping[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.stack([e[key] for e in encoded])) for key in encoded[0]}


class MetadataEncoder(nn.Module):
    """Metadata tensors → one vector; in training each field is dropped (set unknown) with ``p``."""

    def __init__(self, spec: MetadataSpec, dim: int = 64, embed: int = 8, field_dropout: float = 0.2) -> None:
        super().__init__()
        self.field_dropout = field_dropout
        self.sex = nn.Embedding(len(SEXES) + 1, embed)
        self.site = nn.Embedding(len(spec.sites) + 1, embed)
        self.skin = nn.Embedding(len(FITZPATRICK) + 1, embed)
        width = 2 * spec.n_numeric + 2 * len(spec.flags) + 3 * embed
        self.mlp = nn.Sequential(nn.Linear(width, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
        self.dim = dim

    def forward(self, numeric: torch.Tensor, present: torch.Tensor, flags: torch.Tensor,
                categorical: torch.Tensor) -> torch.Tensor:
        if self.training and self.field_dropout > 0:
            present = present * self._keep(present)
            flags = flags * self._keep(flags)
            categorical = categorical * self._keep(categorical).long()
        known = (flags != 0).float()
        parts = [numeric * present, present, flags, known,
                 self.sex(categorical[:, 0]), self.site(categorical[:, 1]), self.skin(categorical[:, 2])]
        return self.mlp(torch.cat(parts, dim=1))

    def _keep(self, like: torch.Tensor) -> torch.Tensor:
        return (torch.rand(like.shape, device=like.device) >= self.field_dropout).to(like.dtype)


# -- the network -------------------------------------------------------------------------------

class DdxNet(nn.Module):
    """Pooled image embeddings (optional) joined with the metadata vector (optional) → class logits.

    ``forward`` takes either ``images`` (B×K×3×H×W, through ``trunk``) or precomputed trunk
    ``features`` (B×K×D, for training heads on a feature cache); ``mask`` (B×K) marks real images.
    """

    def __init__(self, n_classes: int, *, feature_dim: int = 0, trunk: nn.Module | None = None,
                 metadata: MetadataSpec | None = None, pooling: str = "mean", hidden: int = 256,
                 dropout: float = 0.3, field_dropout: float = 0.2, n_aux: int = 0) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise InputError(f"unknown pooling {pooling!r}; choose {' or '.join(POOLINGS)}", field="pooling")
        if not feature_dim and metadata is None:
            raise InputError("the model needs images, metadata or both", field="inputs")
        self.trunk, self.pooling = trunk, pooling
        self.image_proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, hidden), nn.ReLU()) \
            if feature_dim else None
        self.attention = nn.Linear(hidden, 1) if feature_dim and pooling == "attention" else None
        self.metadata = MetadataEncoder(metadata, field_dropout=field_dropout) if metadata is not None else None
        width = (hidden if feature_dim else 0) + (self.metadata.dim if self.metadata is not None else 0)
        self.joint = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, n_classes)
        self.aux_head = nn.Linear(hidden, n_aux) if n_aux else None

    def encode_images(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Run the trunk on the real images only; B×K×D with zeros where ``mask`` is False."""
        if self.trunk is None:
            raise InputError("this model was built without an image trunk; pass cached features")
        flat = self.trunk(images[mask])
        features = flat.new_zeros((*mask.shape, flat.shape[-1]))
        features[mask] = flat
        return features

    def pool(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        assert self.image_proj is not None
        hidden = self.image_proj(features)
        weights = mask.to(hidden.dtype)
        if self.attention is not None:
            scores = self.attention(hidden).squeeze(-1).masked_fill(~mask, float("-inf"))
            weights = torch.softmax(scores, dim=1)
        else:
            weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1)
        return (hidden * weights.unsqueeze(-1)).sum(dim=1)

    def forward(self, *, mask: torch.Tensor | None = None, images: torch.Tensor | None = None,
                features: torch.Tensor | None = None,
                metadata: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        parts = []
        if self.image_proj is not None:
            if features is None and images is not None and mask is not None:
                features = self.encode_images(images, mask)
            if features is None or mask is None:
                raise InputError("this model needs images (or cached features) and their mask")
            parts.append(self.pool(features.float(), mask))
        if self.metadata is not None:
            if metadata is None:
                raise InputError("this model needs metadata inputs (all fields may be unknown)")
            parts.append(self.metadata(**metadata))
        joint = self.joint(torch.cat(parts, dim=1))
        out = {"logits": self.head(joint)}
        if self.aux_head is not None:
            out["aux_logits"] = self.aux_head(joint)
        return out
