"""``dermkit serve`` (the HTTP service) and ``dermkit index build`` (its similar-case index)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dermkit.cli.output import emit
from dermkit.core.precision import PRECISION_HELP, PRECISIONS


def _cmd_serve(args: argparse.Namespace) -> int:
    from dermkit.serve import ServeConfig
    from dermkit.serve.server import serve

    serve(ServeConfig(
        model=args.model, ddx_model=args.ddx_model, index=args.index, host=args.host, port=args.port,
        classes=None if args.classes is None else tuple(args.classes), max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms, threads=args.threads, store_uploads=args.store_uploads,
        cache_dir=args.cache_dir, precision=args.precision, **_serve_image_limits(args),
        api_key_file=args.api_key_file, no_api_key=args.no_api_key, rate_limit=args.rate_limit,
    ))
    return 0


def _add_serve_image_limits(serve: argparse.ArgumentParser) -> None:
    """The image gate's and the concurrency cap's flags; unset ones keep ServeConfig's defaults (docs/serve.md)."""
    limits = serve.add_argument_group("image limits and concurrency (defaults in docs/serve.md)")
    limits.add_argument("--max-pixels", type=int, help="pixels per image, as its header declares (50,000,000)")
    limits.add_argument("--min-side", type=int, help="shortest allowed image side (32)")
    limits.add_argument("--max-side", type=int, help="longest allowed image side (16384)")
    limits.add_argument("--max-request-pixels", type=int,
                        help="decoded pixels of all images of one request, JPEGs after reduced decoding (100,000,000)")
    limits.add_argument("--decode-side", type=int,
                        help="JPEGs are decoded at the smallest scale keeping both sides at least this (448)")
    limits.add_argument("--decode-threads", type=int, help="images decoded at once, all requests together (2)")
    limits.add_argument("--max-concurrent", type=int, help="requests decoding or inferring at once (8)")
    limits.add_argument("--queue-timeout", type=float, metavar="SECONDS", dest="queue_timeout_s",
                        help="how long a request over --max-concurrent waits before 503 with Retry-After (10)")


def _serve_image_limits(args: argparse.Namespace) -> dict[str, Any]:
    names = ("max_pixels", "min_side", "max_side", "max_request_pixels", "decode_side", "decode_threads",
             "max_concurrent", "queue_timeout_s")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _cmd_index_build(args: argparse.Namespace) -> int:
    from dermkit.serve.build import build_index

    emit(args, build_index(args.model, args.tables, args.out, images=args.images, cache_dir=args.cache_dir,
                     classes=args.classes))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="HTTP API and web page: differential, concepts, similar cases")
    serve.add_argument("--model", default="dermlip-lite", help="vision-language model (any load_model name)")
    serve.add_argument("--ddx-model", help="differential-diagnosis model (default: zero-shot with --model)")
    serve.add_argument("--index", type=Path, help="similar-case index from 'dermkit index build'")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--classes", nargs="+", metavar="CONDITION",
                       help="zero-shot condition list (default: ddx26 + HAM10000 + PAD-UFES-20 classes)")
    serve.add_argument("--max-batch", type=int, default=8, help="images per model call; 1 disables batching")
    serve.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits to fill")
    serve.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    serve.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    serve.add_argument("--store-uploads", type=Path, metavar="DIR",
                       help="keep uploaded photos (pixels only, EXIF stripped) in DIR; default: never stored")
    serve.add_argument("--cache-dir", type=Path, help="prompt-embedding cache (default ~/.cache/dermkit/textbank)")
    _add_serve_image_limits(serve)
    serve.add_argument("--api-key-file", type=Path, metavar="FILE",
                       help="require one of FILE's keys (one per line) as 'Authorization: Bearer KEY' or 'X-API-Key'")
    serve.add_argument("--no-api-key", action="store_true",
                       help="allow binding a non-loopback --host without --api-key-file")
    serve.add_argument("--rate-limit", metavar="N/min",
                       help="requests per client address, N/s, N/min or N/h, or 'off' "
                            "(default: off on loopback, 120/min on any other address)")
    serve.set_defaults(func=_cmd_serve)

    index = sub.add_parser("index", help="similar-case indexes for 'dermkit serve'")
    index_sub = index.add_subparsers(dest="index_command", required=True)
    build = index_sub.add_parser("build", help="embed case tables into one similar-case index")
    build.add_argument("tables", type=Path, nargs="+", metavar="TABLE", help="case-table directories")
    build.add_argument("--model", default="dermlip-lite", help="the model the server will run")
    build.add_argument("--out", type=Path, required=True, help="index directory")
    build.add_argument("--images", choices=["first", "all"], default="all",
                       help="embed every image of a case (pooled) or only the first")
    build.add_argument("--cache-dir", type=Path, help="feature cache (default ~/.cache/dermkit/features)")
    build.add_argument("--classes", nargs="+", metavar="CONDITION",
                       help="the server's --classes, for the prompt bank stored with the index (default list)")
    build.set_defaults(func=_cmd_index_build)
