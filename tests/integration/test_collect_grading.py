"""Schema migrations and the grading queue, on SQLite and PostgreSQL."""

from __future__ import annotations

import html
from datetime import timedelta

import test_collect_fixtures as fixtures
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, update
from test_collect_fixtures import (
    Platform,
    contribute,
    grade_dermatologist,
    photo,
    take_next,
)

from dermkit.collect.db import make_engine, upgrade
from dermkit.collect.grading import ASSIGNMENT_TIMEOUT
from dermkit.collect.models import Base, GradeRecord, utcnow

# The shared fixtures, under the names tests ask for.
db_url = fixtures.db_url
platform = fixtures.platform
postgres_server = fixtures.postgres_server


def test_the_migrations_create_exactly_the_models_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    upgrade(engine)  # a second run is a no-op
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        revision = MigrationContext.configure(connection).get_current_revision()
    engine.dispose()
    assert differences == []
    assert revision == "0002"


def test_a_database_at_the_first_migration_is_brought_up_to_date(db_url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect, text

    from dermkit.collect.db import MIGRATIONS

    engine = make_engine(db_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(text("INSERT INTO login_failures (key, at) VALUES ('user:ann', CURRENT_TIMESTAMP)"))
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert "rate_counters" in tables and "login_failures" not in tables


def test_cases_are_assigned_up_to_the_quota_never_twice_to_one_grader(platform: Platform) -> None:
    """The platform fixture asks for 3 dermatologist grades per case."""
    contribute(platform.anonymous, [photo(1)])
    graders = [platform.signed_in(f"d{n}", "dermatologist") for n in range(4)]
    first = take_next(graders[0])
    assert first is not None
    assert take_next(graders[0]) == first  # an open assignment is handed back, not a second one
    second, third = take_next(graders[1]), take_next(graders[2])
    assert second and third and len({first[0], second[0], third[0]}) == 3
    assert take_next(graders[3]) is None  # three places, all taken

    assert grade_dermatologist(graders[0], first[0], [("Acne", 3)]).status_code == 303
    assert take_next(graders[0]) is None  # never the same case again
    # A lapsed assignment frees its place, and can no longer be submitted.
    with platform.app.state.sessions() as session:
        session.execute(update(GradeRecord).where(GradeRecord.id == second[0])
                        .values(assigned_at=utcnow() - ASSIGNMENT_TIMEOUT - timedelta(minutes=1)))
        session.commit()
    assert graders[1].get(f"/grade/{second[0]}").status_code == 404
    assert take_next(graders[3]) is not None
    with platform.app.state.sessions() as session:
        kinds = session.scalars(select(GradeRecord.grader_id)).all()
    assert len(kinds) == len(set(kinds)) == 3


def test_dermatologist_answers_are_checked(platform: Platform) -> None:
    contribute(platform.anonymous, [photo(1)])
    derm = platform.signed_in("derm", "dermatologist")
    grade_id, _ = take_next(derm)  # type: ignore[misc]
    refused = [
        (grade_dermatologist(derm, grade_id, [("Psoriasiss", 3)]), "'condition_1'", "Psoriasis"),
        (grade_dermatologist(derm, grade_id, [("Acne", 7)]), "'confidence_1'", "1–5"),
        (grade_dermatologist(derm, grade_id, [("Acne", 3), ("acne vulgaris", 2)]), "'condition_2'", "twice"),
        (grade_dermatologist(derm, grade_id, [], gradable=True), "'condition_1'", "at least one"),
        (grade_dermatologist(derm, grade_id, [("Acne", 3)], gradable=False), "'condition_1'", "no conditions"),
        (grade_dermatologist(derm, grade_id, [("Acne", 3)], fitzpatrick=7), "'fitzpatrick'", "1–6"),
    ]
    for response, field, words in refused:
        text = html.unescape(response.text)
        assert response.status_code == 400 and field in text and words in text, text
    assert grade_dermatologist(derm, grade_id, [("Acne", 3)], fitzpatrick=4).status_code == 303
    with platform.app.state.sessions() as session:
        record = session.get(GradeRecord, grade_id)
        assert (record.gradable, record.fitzpatrick, [(c.condition_id, c.confidence) for c in record.conditions]) == (
            True, 4, [("acne", 3)])
