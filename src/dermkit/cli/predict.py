"""``dermkit predict``: the ranked differential of one case from a trained ddx model."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dermkit.cli.common import TTA_HELP, key_values
from dermkit.cli.output import add_json, emit
from dermkit.models.transforms import TTA_VIEW_COUNTS


def _show_differential(result: dict[str, Any]) -> None:
    for entry in result["differential"]:
        print(f"{entry['rank']:>2}. {entry['probability']:6.1%}  {entry['name']} ({entry['id']})")
    for note in result["ignored"]:
        print(f"note: this model does not use {note}", file=sys.stderr)
    print(result["note"], file=sys.stderr)


def _cmd_predict(args: argparse.Namespace) -> int:
    from dermkit.predict import parse_fields, predict_case

    fields = parse_fields(age=args.age, sex=args.sex, fitzpatrick=args.fitzpatrick, site=args.site,
                          symptoms=args.symptom, history=key_values(args.history, "--history"),
                          measurements=key_values(args.measurement, "--measurement"))
    result = predict_case(args.model, args.images, fields, top=args.top, tta=args.tta)
    emit(args, result, lambda: _show_differential(result))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    predict = sub.add_parser("predict", help="ranked differential of one case (research use only)")
    predict.add_argument("model", help="a model directory written by 'dermkit train ddx' (RUN/model)")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="1-6 images of the case")
    predict.add_argument("--age", type=float)
    predict.add_argument("--sex", help="female | male | other")
    predict.add_argument("--site", help="body site (ontology name or synonym)")
    predict.add_argument("--fitzpatrick", help="skin type I-VI or 1-6")
    predict.add_argument("--symptom", action="append", default=[], help="reported symptom (repeatable)")
    predict.add_argument("--history", action="append", default=[], metavar="KEY=yes|no",
                         help="history answer, e.g. smoke=no (repeatable)")
    predict.add_argument("--measurement", action="append", default=[], metavar="NAME=VALUE",
                         help="numeric finding the model was trained on, e.g. diameter_1_mm=6 (repeatable)")
    predict.add_argument("--top", type=int, help="show only the top N conditions")
    predict.add_argument("--tta", type=int, choices=TTA_VIEW_COUNTS, metavar="N",
                         help=TTA_HELP + "; default: the count stored with the model")
    add_json(predict)
    predict.set_defaults(func=_cmd_predict)
