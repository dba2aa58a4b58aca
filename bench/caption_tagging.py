"""Benchmark: tag 1,000,000 generated captions with dermkit's curation tagger vs a naive baseline.

The baseline is what one writes first: one compiled ``\\bterm\\b`` regex per vocabulary term
(the same 5,800-odd terms and variants), searched in every normalised caption, no negation. It
is far too slow to run on a million captions, so it is timed on a subsample and extrapolated
(the JSON says so). Both are scored on the hand-labelled set in tests/data and on generated
captions whose answers are known; dermkit's tagger is also compared with the ontology tagger
(the per-clause regex it must agree with).

    OMP_NUM_THREADS=1 python bench/caption_tagging.py [--captions 1000000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from pathlib import Path

from dermkit.core.atomic import atomic_write_text
from dermkit.core.precision import cpu_capability
from dermkit.curate.caption_gen import CaptionGenerator
from dermkit.curate.tag_scoring import labelled_from_generated, read_labelled, score_tags
from dermkit.curate.tagging import CaptionTagger, CaptionTags, tag_captions
from dermkit.ontology import TextTags, default_ontology, normalize_term, tag_text
from dermkit.ontology.tagger import VOCABULARIES, term_targets

ROOT = Path(__file__).resolve().parents[1]
LABELLED = ROOT / "tests" / "data" / "caption_tags_labelled.jsonl"
RESULT = ROOT / "bench" / "results" / "caption_tagging.json"


class NaiveTagger:
    """One regex per term; every match counts, nothing is negated, ancestors are not pruned."""

    def __init__(self) -> None:
        self._patterns = [(re.compile(rf"\b{re.escape(term)}\b"), owners)
                          for term, owners in term_targets(default_ontology()).items()]

    def tag(self, text: str) -> CaptionTags:
        norm = normalize_term(text)
        found: dict[str, dict[str, None]] = {v: {} for v in VOCABULARIES}
        for pattern, owners in self._patterns:
            if pattern.search(norm):
                for vocabulary, node_id in owners:
                    found[vocabulary][node_id] = None
        return CaptionTags(**{v: tuple(found[v]) for v in VOCABULARIES})


def _same(ours: CaptionTags, reference: TextTags) -> bool:
    """Whether both taggers found the same ids, skin types and negations."""
    fields = (*VOCABULARIES, "fitzpatrick", "monk", "negated")
    return all(getattr(ours, f) == getattr(reference, f) for f in fields)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--baseline-captions", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    start = time.perf_counter()
    generated = list(CaptionGenerator(seed=args.seed).captions(args.captions))
    texts = [g.text for g in generated]
    generate_s = time.perf_counter() - start

    start = time.perf_counter()
    tagger = CaptionTagger()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    table = tag_captions(texts, workers=args.workers, tagger=tagger)
    seconds = time.perf_counter() - start
    assert table.num_rows == len(texts)

    naive = NaiveTagger()
    sample = texts[: args.baseline_captions]
    start = time.perf_counter()
    for text in sample:
        naive.tag(text)
    baseline_s = time.perf_counter() - start
    baseline_rate = len(sample) / baseline_s

    labelled = read_labelled(LABELLED)
    check = generated[:20_000]
    check_rows = labelled_from_generated(check)
    reference = [tag_text(t) for t in texts[:2_000]]
    agree = sum(_same(tagger.tag(t), r) for t, r in zip(texts[:2_000], reference))
    rate = len(texts) / seconds
    result = {
        "cpu_capability": cpu_capability(),  # no model runs: the tagger is pure Python
        "captions": len(texts),
        "seconds": round(seconds, 2),
        "captions_per_s": round(rate),
        "workers": args.workers,
        "compile_seconds": round(compile_s, 2),
        "generate_seconds": round(generate_s, 2),
        "baseline": {
            "method": "one compiled \\bterm\\b regex per term (5.8k terms), no negation",
            "captions_timed": len(sample),
            "seconds": round(baseline_s, 2),
            "captions_per_s": round(baseline_rate, 1),
            "extrapolated_seconds_for_all": round(len(texts) / baseline_rate),
            "note": "timed on the first captions of the same generated set, single process, "
                    "and extrapolated linearly to all captions",
            "hand_labelled": score_tags([naive.tag(r["text"]) for r in labelled], labelled).as_dict(),
        },
        "ratio": round(rate / baseline_rate, 1),
        "ratio_note": "ours (all workers) / baseline (one process) throughput",
        "hand_labelled": score_tags([tagger.tag(r["text"]) for r in labelled], labelled).as_dict(),
        "generated_20k": score_tags([tagger.tag(g.text) for g in check], check_rows).as_dict(),
        "agreement_with_ontology_tagger_2k": round(agree / len(reference), 4),
        "settings": {"seed": args.seed, "cpu_count": os.cpu_count(), "python": platform.python_version(),
                     "load_average_1min": round(os.getloadavg()[0], 2)},
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
