"""Contribution and grading platform: consent-based uploads, dermatologist and lay grading, export.

A FastAPI app (:func:`dermkit.collect.app.create_app`) over SQLAlchemy storage (SQLite by default,
PostgreSQL by URL, schema kept by Alembic). Exports write the SCIN layout, which dermkit's own
``scin`` importer reads back, and a dermkit case table. See ``docs/collect.md``.
"""
