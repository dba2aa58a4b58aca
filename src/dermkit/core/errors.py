"""Errors that tell the user exactly which file, row and field is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class DermkitError(Exception):
    """Base class of every error dermkit raises on purpose (the CLI prints these without a trace)."""


@dataclass
class InputError(DermkitError):
    """Bad user input, located as precisely as we can: file, row (1-based data row) and field."""

    message: str
    file: str | Path | None = None
    row: int | None = None
    field: str | None = None

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def as_record(self) -> dict[str, object]:
        """A JSON-friendly form, used by ``--on-error skip`` reports."""
        return {
            "file": None if self.file is None else str(self.file),
            "row": self.row,
            "field": self.field,
            "message": self.message,
        }
