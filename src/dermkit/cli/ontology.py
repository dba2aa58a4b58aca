"""``dermkit ontology``: look up terms, tag free text, measure a source's coverage."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dermkit.cli.output import add_json, emit
from dermkit.core.errors import DermkitError


def _node_text(record: dict[str, Any]) -> str:
    lines = [f"{record['name']} [{record['id']}]: {record['kind']}, level {record['level']}",
             "path: " + " > ".join(step["name"] for step in record["path"])]
    if record["synonyms"]:
        lines.append("synonyms: " + ", ".join(record["synonyms"]))
    lines += [f"  - {child['name']} [{child['id']}]" for child in record["children"]]
    return "\n".join(lines)


def _cmd_show(args: argparse.Namespace) -> int:
    from dermkit.ontology import UnknownTermError, default_ontology, load_ontology

    try:
        ontology = load_ontology(args.ontology) if args.ontology else default_ontology()
        hierarchy, node = ontology.lookup(args.name)
    except UnknownTermError as error:
        raise DermkitError(str(error)) from error
    except (OSError, ValueError) as error:
        raise DermkitError(f"cannot read ontology {args.ontology}: {error}") from error
    record = hierarchy.describe(node.id)
    emit(args, record, lambda: _node_text(record))
    return 0


def _tags_text(tags: dict[str, Any]) -> str | None:
    lines = []
    for field, values in tags.items():
        if field == "negated":
            values = [f"{vocabulary}:{node_id}" for vocabulary, ids in values.items() for node_id in ids]
        if values:
            lines.append(f"{field}: {', '.join(str(v) for v in values)}")
    return "\n".join(lines) if lines else None


def _cmd_tag(args: argparse.Namespace) -> int:
    from dermkit.ontology import tag_text

    tags = tag_text(args.text).as_dict()
    emit(args, tags, lambda: _tags_text(tags))
    return 0


def _cmd_coverage(args: argparse.Namespace) -> int:
    from dermkit.data.coverage import format_coverage, label_coverage

    coverage = label_coverage(args.path, source=args.source)
    emit(args, coverage.as_dict(), lambda: "\n".join(format_coverage(coverage)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ontology = sub.add_parser("ontology", help="look up ontology terms and tag free text")
    ontology_sub = ontology.add_subparsers(dest="ontology_command", required=True)

    show = ontology_sub.add_parser("show", help="show a condition, concept, body site or symptom")
    show.add_argument("name", help="an id, name or synonym (case and punctuation ignored)")
    show.add_argument("--ontology", type=Path, metavar="FILE",
                      help="a Derm1M ontology.json to use instead of the shipped conditions")
    add_json(show)
    show.set_defaults(func=_cmd_show)

    tag = ontology_sub.add_parser("tag", help="tag conditions, concepts, sites, symptoms and skin types in text")
    tag.add_argument("text", help="free text, e.g. a caption")
    add_json(tag)
    tag.set_defaults(func=_cmd_tag)

    coverage = ontology_sub.add_parser("coverage", help="how many of a source's condition names the ontology maps")
    coverage.add_argument("path", type=Path,
                          help="a file of condition names (one a line), or a dermatology-rankings release "
                               "(folder or dermatology_selectors.json: also the readers' label mass)")
    coverage.add_argument("--source", help="map with this source's code table in mappings.yaml "
                                           "(default: dermatology-rankings for a release, else names only)")
    add_json(coverage)
    coverage.set_defaults(func=_cmd_coverage)
