"""Training throughput (images/s) of ``dermkit train clip`` against open_clip's own training loop.

One run trains the same model on the same image–caption pairs with ``open_clip_train`` (open_clip's
training app: ``python -m open_clip_train.main``) and with dermkit (``python -m dermkit.cli train
clip``), with the same batch size, precision, optimiser (AdamW, same lr / weight decay / betas / eps,
warm-up + cosine), number of steps, data-loader workers and thread count, on the CPU.

- Model: ``dermlip-lite``. dermkit loads it by name; open_clip_train gets the same weights, exported
  once with :func:`dermkit.models.export_model`, as ``--model local-dir:EXPORT``.
- Data: the first N images of ../shared/data/ham10000 (imported with dermkit's importer), else a
  synthetic HAM10000 (``write_synthetic_ham``). Each image gets ONE caption, built by
  ``captions_for_case``; dermkit's table stores it as the case's ``caption`` (so dermkit uses exactly
  that one) and open_clip_train reads the same pairs from a CSV (``--dataset-type csv``). N is
  batch × steps, so each run is one epoch of ``steps`` optimiser steps. open_clip_train gets
  dermkit's training augmentation through ``--aug-cfg`` (see :func:`open_clip_augmentation`).
- Configurations: ``full`` trains both towers (the like-for-like case: nothing can be cached);
  ``locked`` freezes both trunks — open_clip_train's ``--lock-image --lock-text`` (with
  ``--lock-image-freeze-bn-stats --lock-text-freeze-layer-norm``, without which open_clip keeps the
  text LayerNorms and BN statistics training, i.e. the trunks are not really frozen) against
  dermkit's ``--lock-image --lock-text``, which encodes each image and caption once into a feature
  cache and then trains only the projections and the logit scale. The cache is computed by the first
  dermkit locked run (its cost is reported separately) and reused by the later repeats.

Method: every run is a fresh process whose optimiser steps are timestamped by a global
``torch.optim`` step post-hook (the same hook for both programs, independent of their own logs).
Steady-state images/s = batch × (steps − W) / (time of the last step − time of step W): the first W
steps (default 2: worker start-up, first-touch allocations) are excluded, and so is everything
before them (imports, model build, data set-up, dermkit's feature caching) and after the last step
(both programs then save a checkpoint). Each configuration runs ``--repeats`` (locked:
``--locked-repeats``) times, the two programs interleaved (alternating which goes first) so both
see the same machine load; the fastest run of each counts (the timeit rule). Total wall time of each process is reported too.

    python bench/train_throughput.py [--batch-size 16] [--steps 12] [--repeats 3] [--threads 1]
                                     [--workers 1] [--precision fp32|bf16] [--configs full,locked]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DERMKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULT = ROOT / "bench" / "results" / "train_throughput.json"
MODEL = "dermlip-lite"
LR, WD, LR_WARMUP, SEED = 1e-4, 0.1, 2, 0
# open_clip_train's --precision for each dermkit --precision (both: bf16 autocast, fp32 weights).
OPEN_CLIP_PRECISION = {"fp32": "fp32", "bf16": "amp_bf16"}


# -- the child process: run one program with its optimiser steps timestamped ------------------

def child(times_file: str, module: str, argv: list[str]) -> None:
    """Run ``python -m module argv`` in this process, writing each optimiser step's end time."""
    import runpy

    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    steps: list[float] = []
    register_optimizer_step_post_hook(lambda *_: steps.append(time.time()))
    sys.argv = [module, *argv]
    code: Any = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = stop.code
    finally:
        Path(times_file).write_text(json.dumps({"steps": steps, "end": time.time(),
                                                "threads": torch.get_num_threads()}))
    if code not in (0, None):
        sys.exit(code)


# -- data and model ---------------------------------------------------------------------------

def prepare(scratch: Path, n_images: int) -> tuple[Path, Path, Path, str]:
    """The dermkit table, open_clip_train's CSV of the same pairs, and the exported model."""
    import pandas as pd

    from dermkit.data.captions import captions_for_case
    from dermkit.data.importers import run_import
    from dermkit.data.table import (
        frame_to_cases,
        read_manifest,
        read_table,
        write_table,
    )
    from dermkit.models import ModelCard, export_model, load_model

    source = SHARED_DATA / "ham10000"
    if (source / "metadata.csv").exists():
        image_source = f"ham10000 ({source}), first {n_images} images"
    else:
        from dermkit.data.synthetic import write_synthetic_ham

        source = write_synthetic_ham(scratch / "synthetic-ham", n_cases=n_images, size=224)
        image_source = "synthetic 224×224 (ham10000 absent)"
    imported = scratch / "ham-all"
    run_import("ham10000", source, imported, check_images=False)
    frame = read_table(imported)
    frame = frame[[all(Path(p).exists() for p in paths) for paths in frame["image_paths"]]]
    frame = frame.iloc[:n_images].reset_index(drop=True)
    if len(frame) < n_images:
        sys.exit(f"only {len(frame)} images available, {n_images} needed")
    frame["image_paths"] = [list(paths[:1]) for paths in frame["image_paths"]]  # one image per case
    frame["caption"] = [captions_for_case(case, n=1, seed=SEED)[0] for case in frame_to_cases(frame)]
    frame["split"] = "train"
    table = write_table(frame, scratch / "table", manifest=read_manifest(imported))
    csv = scratch / "pairs.csv"
    pd.DataFrame({"filepath": [paths[0] for paths in frame["image_paths"]], "title": frame["caption"]}).to_csv(
        csv, index=False)

    loaded = load_model(MODEL)
    card = loaded.card or ModelCard(model_id=MODEL, description=MODEL)
    export = export_model(loaded, scratch / "export", card)
    return table, csv, export, image_source


def open_clip_augmentation() -> list[str]:
    """open_clip_train's ``--aug-cfg`` for dermkit's training augmentation (``preprocess_train``).

    Without it open_clip_train would only crop (scale 0.9–1): about 2.8 ms of worker CPU per HAM10000
    image against 6.6 ms for dermkit's crop + colour jitter + grayscale, which on a saturated machine
    competes with the training step. open_clip's own transform has no flips (dermkit's two flips cost
    well under 0.1 ms an image), so the matched pipeline costs 5.9 ms an image.
    """
    from dermkit.models.transforms import (
        CROP_SCALE,
        GRAYSCALE_PROB,
        JITTER,
        JITTER_PROB,
    )

    return [f"scale={tuple(CROP_SCALE)!r}", f"color_jitter={tuple(JITTER)!r}",
            f"color_jitter_prob={JITTER_PROB!r}", f"gray_scale_prob={GRAYSCALE_PROB!r}"]


def commands(config: str, args: argparse.Namespace, table: Path, csv: Path, export: Path, run_dir: Path,
             cache_dir: Path) -> dict[str, tuple[str, list[str]]]:
    common_oc = [
        "--train-data", str(csv), "--dataset-type", "csv", "--csv-separator", ",",
        "--csv-img-key", "filepath", "--csv-caption-key", "title",
        "--model", f"local-dir:{export}", "--device", "cpu", "--precision", OPEN_CLIP_PRECISION[args.precision],
        "--batch-size", str(args.batch_size), "--epochs", "1", "--workers", str(args.workers),
        "--lr", str(LR), "--wd", str(WD), "--warmup", str(LR_WARMUP), "--seed", str(SEED),
        "--beta1", "0.9", "--beta2", "0.999", "--eps", "1e-8",
        "--log-every-n-steps", "1", "--logs", str(run_dir / "open_clip_train"), "--name", "run",
        "--save-frequency", "1", "--zeroshot-frequency", "0", "--val-frequency", "0",
        "--aug-cfg", *open_clip_augmentation(),
    ]
    common_dk = [
        "train", "clip", "--model", MODEL, "--data", str(table), "--out", str(run_dir / "dermkit"),
        "--epochs", "1", "--max-steps", str(args.steps), "--batch-size", str(args.batch_size),
        "--lr", str(LR), "--wd", str(WD), "--warmup", str(LR_WARMUP), "--seed", str(SEED),
        "--precision", args.precision, "--workers", str(args.workers), "--no-export",
        "--cache-dir", str(cache_dir),
    ]
    if config == "locked":
        common_oc += ["--lock-image", "--lock-image-freeze-bn-stats", "--lock-text", "--lock-text-freeze-layer-norm"]
        common_dk += ["--lock-image", "--lock-text"]
    return {"open_clip_train": ("open_clip_train.main", common_oc), "dermkit": ("dermkit.cli", common_dk)}


# -- one timed run ----------------------------------------------------------------------------

def run_once(name: str, module: str, argv: list[str], args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    run_dir.mkdir(parents=True, exist_ok=True)
    times_file = run_dir / f"{name}-times.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    started = time.time()
    done = subprocess.run([sys.executable, __file__, "--child", str(times_file), module, "--", *argv],
                          check=False, cwd=run_dir, env=env, capture_output=True, text=True)
    wall = time.time() - started
    (run_dir / f"{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"{name} failed (exit {done.returncode}); its output:\n{(done.stdout + done.stderr)[-4000:]}")
    record = json.loads(times_file.read_text())
    for checkpoint in run_dir.rglob("*.pt"):  # ~300 MB each (weights + AdamW state); only the timings matter
        checkpoint.unlink()
    steps = record["steps"]
    if len(steps) != args.steps:
        sys.exit(f"{name} ran {len(steps)} optimiser steps, expected {args.steps}; see {run_dir}")
    measured = args.steps - args.warmup_steps
    seconds = steps[-1] - steps[args.warmup_steps - 1]
    result = {
        "images_per_s": args.batch_size * measured / seconds,
        "steady_seconds": seconds,
        "step_seconds": [round(b - a, 3) for a, b in zip([started, *steps[:-1]], steps, strict=True)],
        "startup_to_first_step_s": steps[0] - started,
        "wall_s": wall,
        "threads": record["threads"],
    }
    if name == "dermkit":  # the feature-cache events (locked trunks): computed or reused, and how long
        metrics = run_dir / "dermkit" / "metrics.jsonl"
        events = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
        result["feature_cache"] = [{k: e.get(k) for k in ("side", "hit", "items", "seconds")}
                                   for e in events if e.get("event") == "feature_cache"]
    print(f"  {name:16s} {result['images_per_s']:8.2f} images/s steady, {wall:6.1f} s wall "
          f"(first step at {result['startup_to_first_step_s']:.1f} s)", flush=True)
    return result


def bench_config(config: str, args: argparse.Namespace, table: Path, csv: Path, export: Path,
                 scratch: Path) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"open_clip_train": [], "dermkit": []}
    cache_dir = scratch / f"cache-{config}"
    repeats = args.repeats if config == "full" else args.locked_repeats
    for repeat in range(repeats):
        print(f"{config}, repeat {repeat + 1}/{repeats} (load average {os.getloadavg()[0]:.2f})", flush=True)
        order = ["open_clip_train", "dermkit"] if repeat % 2 == 0 else ["dermkit", "open_clip_train"]
        for name in order:
            run_dir = scratch / f"{config}-{repeat}-{name}"
            module, argv = commands(config, args, table, csv, export, run_dir, cache_dir)[name]
            runs[name].append(run_once(name, module, argv, args, run_dir))
    best = {name: max(r["images_per_s"] for r in results) for name, results in runs.items()}
    result: dict[str, Any] = {
        "open_clip_train_images_per_s": round(best["open_clip_train"], 2),
        "dermkit_images_per_s": round(best["dermkit"], 2),
        "ratio": round(best["dermkit"] / best["open_clip_train"], 3),
        "open_clip_train_images_per_s_runs": [round(r["images_per_s"], 2) for r in runs["open_clip_train"]],
        "dermkit_images_per_s_runs": [round(r["images_per_s"], 2) for r in runs["dermkit"]],
        "open_clip_train_wall_s_runs": [round(r["wall_s"], 1) for r in runs["open_clip_train"]],
        "dermkit_wall_s_runs": [round(r["wall_s"], 1) for r in runs["dermkit"]],
        "open_clip_train_step_s_runs": [r["step_seconds"] for r in runs["open_clip_train"]],
        "dermkit_step_s_runs": [r["step_seconds"] for r in runs["dermkit"]],
    }
    if config == "locked":
        first = runs["dermkit"][0]
        cache_cost = sum(e.get("seconds") or 0 for e in first["feature_cache"] if not e["hit"])
        result["dermkit_feature_cache"] = {
            "computed_in_first_run_s": round(cache_cost, 1),
            "events_first_run": first["feature_cache"],
            "reused_in_later_runs": all(all(e["hit"] for e in r["feature_cache"]) for r in runs["dermkit"][1:]),
            "note": ("one forward pass of the frozen trunks over every training image (eval preprocessing, no "
                     "augmentation) and caption, paid once per (model, data, preprocessing); the steady-state "
                     "figures exclude it, the first run's wall time includes it"),
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12, help="optimiser steps per run (images = batch × steps)")
    parser.add_argument("--warmup-steps", type=int, default=2, help="first steps excluded from the steady state")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved runs of each program (full config); the fastest counts")
    parser.add_argument("--locked-repeats", type=int, default=2,
                        help="the same for the locked config (the first dermkit run computes the cache)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch / OpenMP threads of both programs (1: on a shared 2-core machine 2 threads "
                             "made a training step 3.5x slower)")
    parser.add_argument("--workers", type=int, default=1, help="data-loader workers of both programs")
    parser.add_argument("--precision", choices=sorted(OPEN_CLIP_PRECISION), default="fp32")
    parser.add_argument("--configs", default="full,locked", help="comma-separated: full, locked")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--keep", type=Path, help="keep the runs' logs and data in this directory")
    args = parser.parse_args()
    if not 1 <= args.warmup_steps < args.steps:
        parser.error("--warmup-steps must be at least 1 and below --steps")
    configs = [c for c in args.configs.split(",") if c]
    if set(configs) - {"full", "locked"}:
        parser.error("--configs takes full and/or locked")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # the importer's progress bar
    started = time.time()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="train-throughput-") as tmp:
        scratch = args.keep or Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        n_images = args.batch_size * args.steps
        table, csv, export, image_source = prepare(scratch, n_images)
        print(f"{n_images} images from {image_source}; model exported to {export}", flush=True)
        results = {config: bench_config(config, args, table, csv, export, scratch) for config in configs}

    import torch

    from dermkit.core.atomic import atomic_write_text

    load_after = os.getloadavg()
    result = {
        "model": MODEL,
        "images": n_images,
        "image_source": image_source,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "measured_steps": args.steps - args.warmup_steps,
        "threads": args.threads,
        "workers": args.workers,
        "precision": args.precision,
        "repeats": {"full": args.repeats, "locked": args.locked_repeats},
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "configs": results,
        "ratio": results["full"]["ratio"] if "full" in results else None,
        "method": (
            f"Each run is a fresh process (OMP_NUM_THREADS=MKL_NUM_THREADS=torch threads={args.threads}, "
            f"{args.workers} data-loader workers) training {MODEL} for {args.steps} AdamW steps (lr {LR}, "
            f"wd {WD}, betas 0.9/0.999, eps 1e-8, {LR_WARMUP} warm-up steps then cosine) of batch "
            f"{args.batch_size} on the same {n_images} image-caption pairs, {args.precision}, CPU: "
            "open_clip_train (python -m open_clip_train.main, --model local-dir:<export_model of "
            f"{MODEL}>, --dataset-type csv) vs dermkit (python -m dermkit.cli train clip --model {MODEL}). "
            "A global torch.optim step post-hook timestamps every optimiser step in both; images/s = "
            f"batch x {args.steps - args.warmup_steps} / (last step time - step {args.warmup_steps} time), "
            f"i.e. start-up, the first {args.warmup_steps} steps, dermkit's feature caching and the final "
            f"checkpoint save are excluded. {args.repeats} (full) / {args.locked_repeats} (locked) interleaved "
            "repeats, alternating which program goes first; the fastest run of each counts. Same augmentation: "
            "open_clip_train gets dermkit's (crop scale 0.4-1, colour jitter p 0.8, grayscale p 0.2) via "
            "--aug-cfg (dermkit also flips; open_clip cannot). ratio = dermkit / open_clip_train "
            "(higher is better). 'locked': open_clip_train --lock-image --lock-image-freeze-bn-stats "
            "--lock-text --lock-text-freeze-layer-norm (forward through both frozen trunks every step) vs "
            "dermkit --lock-image --lock-text (trunk features cached once, only the projections train); the "
            "cache cost is reported separately under dermkit_feature_cache."
        ),
        "settings": {
            "torch": torch.__version__,
            "open_clip": _version("open_clip_torch"),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "bench_wall_s": round(time.time() - started, 1),
        },
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k not in ("configs", "method")}
    summary["configs"] = {c: {k: v for k, v in r.items() if not k.endswith("_runs")} for c, r in results.items()}
    print(json.dumps(summary, indent=2))
    return 0


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        separator = sys.argv.index("--")
        child(sys.argv[2], sys.argv[3], sys.argv[separator + 1:])
    else:
        sys.exit(main())
