"""``dermkit demo``: the main job end to end on the real sample (or synthetic data)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dermkit.cli.output import add_json, emit


def _show_summary(summary: dict[str, Any], out: Path) -> None:
    from dermkit.data.stats import format_stats

    print(f"dermkit demo on the {summary['data']} -> {out}")
    for name, table in summary["tables"].items():
        print(f"\n== {name}: {table['cases']} cases in {table['table']}")
        print(format_stats(table["stats"]))
        print(f"leaks across splits: {table['leaks']}")
        if "sample" in table:
            print(f"trained and evaluated on a class-stratified sample: {table['sample']['cases']} cases "
                  f"({table['sample']['table']})")
        print(f"plots: {Path(table['plots'][0]).parent}")
    if "held_out" in summary:
        print(f"\n== {summary['served_model']}: held-out cases of {summary['held_out']['table']}")
        for label in ("untrained", "trained"):
            report = summary["held_out"][label]
            shot, recall = report["zero_shot"], report["retrieval"]["image_to_text"]
            figures = {name: shot["metrics"][name]["estimate"] for name in ("balanced_accuracy", "top1_accuracy")}
            print(f"{label:>9}: text-prompt balanced accuracy {figures['balanced_accuracy']:.3f} "
                  f"(top-1 {figures['top1_accuracy']:.3f}, n {shot['n']}), image->text R@10 {recall['R@10']:.3f}")
    if "ddx" in summary:
        ddx = summary["ddx"]
        figures = {name: ddx["metrics"][name] for name in ("balanced_accuracy", "top3_accuracy")}
        print(f"\n== image + history differential ({ddx['model']}): test balanced accuracy "
              f"{figures['balanced_accuracy']['estimate']:.3f} [{figures['balanced_accuracy']['low']:.3f}, "
              f"{figures['balanced_accuracy']['high']:.3f}], top-3 {figures['top3_accuracy']['estimate']:.3f} "
              f"(n {ddx['n_test']}); card {ddx['card']}")
    if "report" in summary:
        print(f"\nreport: {summary['report']['html']} (Markdown: {summary['report']['markdown']})")


def _serve_demo(summary: dict[str, Any], out: Path, port: int) -> None:
    from dermkit.serve import ServeConfig
    from dermkit.serve.build import build_index
    from dermkit.serve.server import serve

    index = out / "index"
    build_index(summary["served_model"], [t["table"] for t in summary["tables"].values()], index)
    serve(ServeConfig(model=summary["served_model"], index=index, port=port,
                      ddx_model=summary.get("served_ddx_model")))


def _cmd_demo(args: argparse.Namespace) -> int:
    from dermkit.demo import DEMO_HAM_CASES, default_data_root, run_demo

    data_root = args.data_root if args.data_root is not None else default_data_root()
    summary = run_demo(data_root, args.out, seed=args.seed, model=args.model, train=not args.no_train,
                       ham_cases=DEMO_HAM_CASES if args.ham_cases is None else args.ham_cases)
    emit(args, summary, lambda: _show_summary(summary, args.out))
    if args.serve and not args.json:  # --json reports the run and ends, as a script expects
        _serve_demo(summary, args.out, args.port)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="run the main job end to end on the real sample (or synthetic data)")
    demo.add_argument("--data-root", type=Path,  # default resolved when run: importing the demo is slow
                      help="folder holding pad-ufes-20/ and ham10000/ (default: $DERMKIT_DATA or ../shared/data)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="where everything is written")
    demo.add_argument("--seed", type=int, default=0)
    add_json(demo)
    demo.add_argument("--serve", action="store_true",
                      help="end by serving the model, the trained differential-diagnosis model and a "
                           "similar-case index of the demo tables")
    demo.add_argument("--model", default="dermlip-lite",
                      help="vision-language model the demo fine-tunes, evaluates and (with --serve) serves")
    demo.add_argument("--no-train", action="store_true",
                      help="skip fine-tuning, the differential-diagnosis model and held-out evaluation")
    demo.add_argument("--ham-cases", type=int,  # default from dermkit.demo, imported only when run
                      help="train and evaluate on a class-stratified sample of this many HAM10000 cases "
                           "(default: dermkit.demo.DEMO_HAM_CASES, 800; the whole set is still imported, checked "
                           "and described)")
    demo.add_argument("--port", type=int, default=8000, help="port for --serve (bound to 127.0.0.1)")
    demo.set_defaults(func=_cmd_demo)
