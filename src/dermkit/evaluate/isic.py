"""The ISIC challenge's conventions: its submission CSV and the scorer's own rule for ISIC_0035068.

A submission is ``image`` plus one probability column per class, named as in the challenge's
ground truth: ISIC 2018 task 3 ``MEL, NV, BCC, AKIEC, BKL, DF, VASC``; ISIC 2019 ``MEL, NV, BCC,
AK, BKL, DF, VASC, SCC, UNK``. The columns come from the model's label space: each class goes to
the column of its nearest ontology ancestor that is an ISIC class (``other`` → ``UNK``), so a
seven-class HAM10000 model writes exactly the 2018 columns and an ``isic2019`` model the 2019 ones.

``isic-challenge-scoring`` 5.6 (``load_csv.parse_truth_csv``) gives image ISIC_0035068 of the
ISIC 2018 test set zero weight whenever a ground-truth file holds it: the case counts nowhere.
:func:`zero_weight_rows` finds the same rule to a table imported from an ISIC ground-truth CSV, so
dermkit's balanced accuracy equals the scorer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dermkit.core import InputError, atomic_path
from dermkit.data.predictions import UNLABELLED, Predictions
from dermkit.ontology import default_ontology

ISIC_2018 = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
ISIC_2019 = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
ONLY_2019 = frozenset({"SCC", "UNK"})
OTHER_CLASS = "other"  # the label space's catch-all class (models.ddx_net.OTHER)

ZERO_WEIGHT_IMAGES = frozenset({"ISIC_0035068"})
ZERO_WEIGHT_SOURCE = "isic"  # the importer of the challenge's ground-truth CSVs
ZERO_WEIGHT_REASON = ("isic-challenge-scoring 5.6 gives ISIC-2018 image ISIC_0035068 zero weight "
                      "(load_csv.parse_truth_csv), so it is left out here too")


def image_name(case_id: str) -> str:
    """The challenge's ``image`` of a case: its id without the source prefix (``isic:ISIC_0024306``)."""
    return case_id.split(":", 1)[-1]


def isic_columns(classes: Sequence[str]) -> tuple[int, list[str], list[str]]:
    """(edition, its columns for these classes in challenge order, the column of each class).

    2019 when a class maps to SCC or UNK, else 2018 (whose actinic-keratosis column is AKIEC).
    A class with no ISIC ancestor is an error naming it.
    """
    ontology = default_ontology()
    by_condition = {ontology.map_label("isic", code): code for code in ISIC_2019}
    codes = []
    for name in classes:
        node = None if name == OTHER_CLASS else ontology.conditions.find(name)
        ancestry = [] if node is None else [n.id for n in reversed(ontology.conditions.path(node.id))]
        code = "UNK" if name == OTHER_CLASS else next((by_condition[c] for c in ancestry if c in by_condition), None)
        if code is None:
            raise InputError(f"class {name!r} has no ISIC challenge column ({', '.join(ISIC_2019)})", field="classes")
        codes.append(code)
    edition = 2019 if ONLY_2019 & set(codes) else 2018
    if edition == 2018:
        codes = ["AKIEC" if code == "AK" else code for code in codes]
    order = ISIC_2019 if edition == 2019 else ISIC_2018
    return edition, [column for column in order if column in codes], codes


def to_isic_csv(predictions: Predictions, path: str | Path, truth: bool = False) -> int:
    """Write the challenge CSV (``image`` + the ISIC columns of the model's classes); return the edition.

    With ``truth=True`` the columns are the one-hot labels (a ground-truth file); otherwise the
    scores, which must be probabilities in [0, 1] as the scorer requires. Classes sharing a
    column (``other`` and ``unknown_or_other``) are summed into it.
    """
    edition, columns, codes = isic_columns(predictions.classes)
    if truth:
        if (predictions.labels() == UNLABELLED).any():
            raise InputError("a ground-truth file needs every row labelled", file=path, field="label")
        values = np.eye(len(predictions.classes))[predictions.labels()]
    else:
        values = predictions.probs()
        if len(values) and (values.min() < 0 or values.max() > 1):
            raise InputError("ISIC CSVs hold probabilities in [0, 1]; apply softmax first", file=path)
    merge = np.array([[code == column for column in columns] for code in codes], dtype=np.float64)
    frame = pd.DataFrame(values @ merge, columns=columns)
    frame.insert(0, "image", [image_name(case_id) for case_id in predictions.frame["case_id"]])
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return edition


def zero_weight_rows(predictions: Predictions) -> np.ndarray:
    """Rows the ISIC scorer weighs zero: ISIC_0035068 in a table imported from an ISIC ground truth."""
    images = predictions.frame["case_id"].map(image_name)
    return (images.isin(ZERO_WEIGHT_IMAGES) & (predictions.frame["source"] == ZERO_WEIGHT_SOURCE)).to_numpy()


def without_zero_weight(predictions: Predictions) -> tuple[Predictions, dict[str, object] | None]:
    """``predictions`` less the rows the ISIC scorer weighs zero, and a note naming them (None if none)."""
    rows = zero_weight_rows(predictions)
    if not rows.any():
        return predictions, None
    note = {"cases": predictions.frame.loc[rows, "case_id"].tolist(), "why": ZERO_WEIGHT_REASON}
    return predictions.where(~rows), note
