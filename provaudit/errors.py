"""Exceptions with the one-line messages users see.

``InputError`` is bad input (exit code 2): it names the file, the line or record and the
field. ``UsageError`` is a bad option combination (also exit 2). ``CatalogBusy`` is a catalog whose
write lock another process held past the wait (exit 3).
"""
from __future__ import annotations


class ProvauditError(Exception):
    """Base class for errors provaudit reports to users in one line."""

    exit_code = 2


class InputError(ProvauditError):
    """A file or record that cannot be read as the schema requires."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.file, self.line, self.field, self.reason = file, line, field, message
        where = ""
        if file is not None:
            where = str(file)
            if line is not None:
                where += f":{line}"
            where += ": "
        fld = f"field '{field}': " if field else ""
        super().__init__(f"{where}{fld}{message}")


class UsageError(ProvauditError):
    """Options or arguments that do not fit together."""


class CatalogBusy(ProvauditError):
    """Another provaudit process held the catalog's write lock past the wait (exit 3)."""

    exit_code = 3
