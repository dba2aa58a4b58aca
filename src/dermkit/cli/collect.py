"""``dermkit collect``: the contribution and grading platform (serve, export, add-user)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dermkit.cli.output import emit


def _cmd_serve(args: argparse.Namespace) -> int:
    from dermkit.core.optional import require

    uvicorn = require("uvicorn", "collect", "the collection platform")
    require("fastapi", "collect", "the collection platform")
    from dermkit.collect.app import Settings, create_app
    from dermkit.collect.auth import LoginLimits
    from dermkit.collect.grading import GradesNeeded

    settings = Settings(db_url=args.db, media_dir=args.media, secure_cookies=args.secure_cookies,
                        needed=GradesNeeded(args.dermatologist_grades, args.lay_grades),
                        login=LoginLimits(client_failures=args.login_lock_after, max_delay=args.login_max_delay),
                        trusted_proxies=tuple(args.trusted_proxy), contributions_per_hour=args.contributions_per_hour,
                        max_concurrent_uploads=args.max_concurrent_uploads, upload_wait_s=args.upload_timeout)
    # One process: the media sweep at start-up assumes no other worker is mid-upload. The app reads
    # X-Forwarded-For itself (only from --trusted-proxy), so uvicorn must not rewrite the peer address.
    uvicorn.run(create_app(settings), host=args.host, port=args.port, workers=1, log_level="info",
                proxy_headers=False)
    return 0


def _collect_session(args: argparse.Namespace, *, existing: bool = False) -> Any:
    from dermkit.core.optional import require

    require("sqlalchemy", "collect", "the collection platform")
    from sqlalchemy.engine import make_url
    from sqlalchemy.orm import Session

    from dermkit.collect.db import make_engine, upgrade
    from dermkit.core.errors import InputError

    url = make_url(args.db)
    if existing and url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise InputError(f"no database at {url.database}", field="db")
    engine = make_engine(args.db)
    upgrade(engine)
    return Session(engine)


def _cmd_export(args: argparse.Namespace) -> int:
    from dermkit.collect.export import export
    from dermkit.collect.storage import MediaStore

    with _collect_session(args, existing=True) as session:
        summary = export(session, MediaStore(args.media), args.format, args.out)
    emit(args, {"cases": summary.cases, "images": summary.images, "out": str(summary.out_dir)},
         f"exported {summary.cases} cases ({summary.images} images) to {summary.out_dir}")
    return 0


def _cmd_add_user(args: argparse.Namespace) -> int:
    import getpass
    import os

    from dermkit.collect.auth import create_user

    password = os.environ.get("DERMKIT_COLLECT_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    with _collect_session(args) as session:
        create_user(session, args.username, password, args.role)
    emit(args, {"username": args.username, "role": args.role}, f"added {args.role} {args.username}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    collect = sub.add_parser("collect", help="contribution and grading platform (consent, grades, export)")
    collect_sub = collect.add_subparsers(dest="collect_command", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--db", default="sqlite:///dermkit-collect.db",
                            help="SQLAlchemy URL (default sqlite:///dermkit-collect.db; postgresql+psycopg://...)")
        parser.add_argument("--media", type=Path, default=Path("dermkit-collect-media"),
                            help="folder of the uploaded photos (default dermkit-collect-media)")

    serve = collect_sub.add_parser("serve", help="run the web app (migrates the database first)")
    common(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    serve.add_argument("--port", type=int, default=8100)
    serve.add_argument("--dermatologist-grades", type=int, default=3, help="dermatologist grades per case (1-3)")
    serve.add_argument("--lay-grades", type=int, default=1, help="lay Monk-tone grades per case")
    serve.add_argument("--secure-cookies", action="store_true", help="mark cookies Secure (behind HTTPS)")
    serve.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR",
                       help="address or network of a reverse proxy whose X-Forwarded-For is believed (repeatable; "
                            "default none: the peer address is the client)")
    serve.add_argument("--login-lock-after", type=int, default=10, metavar="N",
                       help="lock a client after N failed sign-ins in 15 minutes (default 10)")
    serve.add_argument("--login-max-delay", type=float, default=4.0, metavar="SECONDS",
                       help="cap of the growing delay of an account's sign-ins after failures (default 4)")
    serve.add_argument("--contributions-per-hour", type=int, default=20, metavar="N",
                       help="contributions one client may post per hour (default 20; 0: no limit)")
    serve.add_argument("--max-concurrent-uploads", type=int, default=2,
                       help="photos decoded and checked at once; others wait (docs/collect.md)")
    serve.add_argument("--upload-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="how long a photo waits for a decoding slot before 503 with Retry-After")
    serve.set_defaults(func=_cmd_serve)
    exp = collect_sub.add_parser("export", help="write the SCIN layout or a dermkit case table")
    common(exp)
    exp.add_argument("--format", choices=("scin", "dermkit"), required=True)
    exp.add_argument("--out", type=Path, required=True, help="output folder (replaced atomically)")
    exp.set_defaults(func=_cmd_export)
    user = collect_sub.add_parser("add-user", help="create an account (password from $DERMKIT_COLLECT_PASSWORD "
                                                    "or a prompt)")
    common(user)
    user.add_argument("--username", required=True)
    user.add_argument("--role", choices=("dermatologist", "lay_grader", "admin"), required=True)
    user.set_defaults(func=_cmd_add_user)
