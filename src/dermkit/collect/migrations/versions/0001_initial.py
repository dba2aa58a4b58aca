"""Initial schema: users, sessions, login failures, cases, images, grades.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "login_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_login_sessions_user_id", "login_sessions", ["user_id"])
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_login_failures_key", "login_failures", ["key"])
    op.create_table(
        "cases",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("receipt_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("consent_version", sa.String(32), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("age_group", sa.String(32), nullable=True),
        sa.Column("sex_at_birth", sa.String(32), nullable=True),
        sa.Column("fitzpatrick_skin_type", sa.String(16), nullable=True),
        sa.Column("condition_duration", sa.String(32), nullable=True),
        *(sa.Column(name, sa.JSON(), nullable=False)
          for name in ("race_ethnicity", "textures", "body_parts", "condition_symptoms", "other_symptoms")),
    )
    op.create_index("ix_cases_submitted_at", "cases", ["submitted_at"])
    op.create_table(
        "case_images",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.String(32), sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(128), nullable=False, unique=True),
        sa.Column("shot_type", sa.String(32), nullable=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("sharpness", sa.Float(), nullable=False),
        sa.Column("phash", sa.String(64), nullable=False),
        sa.Column("duplicate_of", sa.Integer(), sa.ForeignKey("case_images.id", ondelete="SET NULL"),
                  nullable=True),
        sa.UniqueConstraint("case_id", "position"),
    )
    op.create_index("ix_case_images_case_id", "case_images", ["case_id"])
    op.create_table(
        "grades",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.String(32), sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("grader_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("assigned_at", sa.DateTime(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=True),
        sa.Column("gradable", sa.Boolean(), nullable=True),
        sa.Column("fitzpatrick", sa.Integer(), nullable=True),
        sa.Column("monk", sa.Integer(), nullable=True),
        sa.UniqueConstraint("case_id", "grader_id"),
    )
    op.create_index("ix_grades_case_id", "grades", ["case_id"])
    op.create_index("ix_grades_grader_id", "grades", ["grader_id"])
    op.create_table(
        "grade_conditions",
        sa.Column("grade_id", sa.Integer(), sa.ForeignKey("grades.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("condition_id", sa.String(128), nullable=False),
        sa.Column("confidence", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    for table in ("grade_conditions", "grades", "case_images", "cases", "login_failures", "login_sessions",
                  "users"):
        op.drop_table(table)
