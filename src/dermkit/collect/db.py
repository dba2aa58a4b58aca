"""Engines and schema migrations: SQLite by default, PostgreSQL by URL, Alembic ``upgrade head``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dermkit.core.errors import DermkitError, InputError
from dermkit.core.optional import require

MIGRATIONS = Path(__file__).with_name("migrations")
DEFAULT_DB_URL = "sqlite:///dermkit-collect.db"


def make_engine(url: str) -> Any:
    """An engine for ``url``; SQLite gets foreign keys on (cascading deletes) and a busy timeout."""
    sqlalchemy = require("sqlalchemy", "collect", "the collection platform")
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError as exc:
        raise InputError(f"not a database URL: {url!r}", field="db") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sqlalchemy.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sqlalchemy.event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    try:
        return sqlalchemy.create_engine(url, pool_pre_ping=True)
    except ImportError as exc:  # the URL's driver is not installed
        raise DermkitError(f"the database driver for {parsed.drivername} is not installed ({exc}); for "
                           "PostgreSQL: pip install 'psycopg[binary]'") from exc


def upgrade(engine: Any) -> None:
    """Bring the schema to the newest migration (creates it on an empty database)."""
    require("alembic", "collect", "database migrations")
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
