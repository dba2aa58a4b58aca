"""``retrieval``: image-text retrieval against captions built from the cases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from dermkit.evaluate.tasks.base import EvalTask, Job, register_task

if TYPE_CHECKING:
    import argparse


@register_task("retrieval")
class RetrievalTask(EvalTask):
    fields: ClassVar[Mapping[str, Any]] = {"split": str, "captions_per_case": int, "seed": int, "ks": list}
    needs_text = runs_models = True
    command, command_help = "retrieval", "image-text retrieval against the cases' captions"

    def check(self, check: Any, values: Mapping[str, Any], lines: Mapping[str, int], at: int,
              earlier: Mapping[str, Any]) -> None:
        check.typed_items(values, "ks", int, at)

    def run(self, job: Job) -> dict[str, Any]:
        """Recall at k both ways; image-to-text recall also with patient-bootstrap CIs; ranks on disk."""
        import numpy as np

        from dermkit.core.atomic import atomic_path
        from dermkit.data.predictions import GROUPING_FIELDS
        from dermkit.evaluate.metrics.collection import score_rows
        from dermkit.evaluate.retrieval import case_captions
        from dermkit.evaluate.runner import (
            predictions_path,
            scoring_options,
            task_split,
        )
        from dermkit.metrics.retrieval import (
            DEFAULT_KS,
            first_hit_ranks,
            recall_metric_fns,
            retrieval_metrics,
        )
        from dermkit.models.encoding import encode_texts, split_embeddings

        task, loaded = job.task, job.loaded
        assert loaded is not None and job.features is not None
        ks = tuple(task.settings.get("ks", DEFAULT_KS))
        cases, embeddings = split_embeddings(loaded, job.frame, task_split(task), features=job.features,
                                             progress=False)
        texts, relevant = case_captions(cases, task.settings.get("captions_per_case", 3), task.settings.get("seed", 0))
        similarity = embeddings @ encode_texts(loaded, texts).T
        ranks = first_hit_ranks(similarity, relevant)
        scored = score_rows(recall_metric_fns(ks), ranks, np.zeros(len(ranks)), cases, **scoring_options(job.suite))
        table = cases.reindex(columns=["case_id", *GROUPING_FIELDS, "split"]).assign(image_to_text_rank=ranks)
        details = {"n_images": len(cases), "n_texts": len(texts), **retrieval_metrics(similarity, relevant, ks)}
        ranks_path = predictions_path(task.name, job.model, job.dataset.name, ".ranks.parquet")
        with atomic_path(job.out / ranks_path) as tmp:
            table.to_parquet(tmp, index=False)
        return {"predictions": str(ranks_path), "split": task_split(task), **scored, "details": details}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--split", default="test", help="split to search (default test)")
        parser.add_argument("--captions-per-case", type=int, default=3)
        parser.add_argument("--seed", type=int, default=0, help="seed of the built captions")

    def run_command(self, args: argparse.Namespace, **scoring: Any) -> Any:
        from dermkit.evaluate.retrieval import retrieval_report

        return retrieval_report(args.model, args.table, args.split, args.captions_per_case, seed=args.seed,
                                images=args.images, cache_dir=args.cache_dir, **scoring)
