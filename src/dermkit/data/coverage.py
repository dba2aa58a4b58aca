"""How much of a source's label vocabulary the ontology maps: names, and for ranked cases, label mass.

Behind ``dermkit ontology coverage``. Names map as the importers map them (the source's code table
in ``mappings.yaml``, then condition names and synonyms); a name that does not map is listed,
never matched to a merely similar condition. With the ``dermatology-rankings`` release the figures
are also weighted by what the readers actually chose: the share of each case's inverse-rank
differential that falls on mapped names, and the share of reader mentions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dermkit.core.errors import InputError
from dermkit.data.aggregate import aggregate_differential
from dermkit.data.importers.dermatology_rankings import (
    SOURCE as RANKINGS,
)
from dermkit.data.importers.dermatology_rankings import (
    map_conditions,
    read_conditions,
    read_release,
    reader_grades,
)
from dermkit.ontology import Ontology, default_ontology


@dataclass(frozen=True)
class CaseMass:
    """Coverage weighted by the readers' rankings of a release's cases."""

    cases: int
    labelled_cases: int
    mentions: int
    mapped_mentions: int
    mapped_mass: float  # mean over labelled cases of the differential weight on mapped names
    top_mapped: int  # labelled cases whose top condition (by release name) maps
    fully_mapped: int  # labelled cases every condition of which maps
    unmapped_mass: dict[str, float]  # unmapped name → its differential weight summed over cases


@dataclass(frozen=True)
class Coverage:
    path: str
    source: str | None  # the code table used; None: condition names and synonyms only
    names: int
    mapped: dict[str, str]
    unmapped: list[str]  # in the order of the list, or by differential mass with a release
    mass: CaseMass | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _checked_source(source: str | None, ontology: Ontology) -> str | None:
    if source is not None and source not in ontology.mappings:
        raise InputError(f"no label table {source!r} in the ontology; known: "
                         f"{', '.join(sorted(ontology.mappings))}", field="source")
    return source


def _case_mass(cases: list[Any], conditions: list[str], ids: dict[str, str | None]) -> CaseMass:
    mentions = mapped_mentions = top_mapped = fully_mapped = labelled = 0
    mapped_mass = 0.0
    unmapped_mass = {name: 0.0 for name, node in ids.items() if node is None}
    for case in cases:
        named = [conditions[i] for reader in case for group in reader for i in group]
        mentions += len(named)
        mapped_mentions += sum(ids[name] is not None for name in named)
        differential = aggregate_differential(reader_grades(case, conditions))
        if differential is None:
            continue
        labelled += 1
        mapped_mass += sum(weight for name, weight in differential.items() if ids[name] is not None)
        top_mapped += ids[next(iter(differential))] is not None
        fully_mapped += all(ids[name] is not None for name in differential)
        for name, weight in differential.items():
            if ids[name] is None:
                unmapped_mass[name] += weight
    return CaseMass(len(cases), labelled, mentions, mapped_mentions, mapped_mass / max(labelled, 1),
                    top_mapped, fully_mapped, unmapped_mass)


def label_coverage(path: str | Path, source: str | None = None, ontology: Ontology | None = None) -> Coverage:
    """Coverage of a names file (one a line), or of a ``dermatology-rankings`` release (its folder or
    ``dermatology_selectors.json``: names and case mass, with that source's table by default)."""
    path = Path(path)
    ontology = ontology or default_ontology()
    if not path.exists():
        raise InputError("path not found", file=path)
    is_release = path.is_dir() or path.suffix.lower() == ".json"
    if is_release:
        release = read_release(path)
        names, source = release.conditions, _checked_source(source or RANKINGS, ontology)
    else:
        names, source = read_conditions(path), _checked_source(source, ontology)
    ids = map_conditions(names, ontology, source)
    mass = None
    unmapped = [name for name in names if ids[name] is None]
    if is_release:
        cases = [case for case in release.cases if case is not None]
        mass = _case_mass(cases, release.conditions, ids)
        unmapped.sort(key=lambda name: (-mass.unmapped_mass[name], name))
    return Coverage(str(path), source, len(names), {n: i for n, i in ids.items() if i is not None}, unmapped, mass)


def format_coverage(coverage: Coverage) -> list[str]:
    """The lines ``dermkit ontology coverage`` prints."""
    table = f"code table {coverage.source!r}, then names" if coverage.source else "names and synonyms only"
    lines = [(f"{len(coverage.mapped)}/{coverage.names} condition names map to the ontology "
             f"({len(coverage.mapped) / max(coverage.names, 1):.1%}; {table})")]
    mass = coverage.mass
    if mass is not None:
        labelled = max(mass.labelled_cases, 1)
        lines += [
            f"{mass.cases} cases ({mass.labelled_cases} labelled), {mass.mentions} reader mentions",
            f"differential mass on mapped names: {mass.mapped_mass:.1%} (mean over labelled cases)",
            (f"reader mentions mapped: {mass.mapped_mentions}/{mass.mentions} "
            f"({mass.mapped_mentions / max(mass.mentions, 1):.1%})"),
            (f"cases whose top condition maps: {mass.top_mapped}/{mass.labelled_cases} "
            f"({mass.top_mapped / labelled:.1%})"),
            (f"cases with every condition mapped: {mass.fully_mapped}/{mass.labelled_cases} "
            f"({mass.fully_mapped / labelled:.1%})"),
        ]
    order = "by differential mass summed over cases" if mass is not None else "as listed"
    lines.append(f"unmapped ({len(coverage.unmapped)}, {order}):")
    for name in coverage.unmapped:
        lines.append(f"  {name}" + (f"  {mass.unmapped_mass[name]:.3f}" if mass is not None else ""))
    return lines
