"""Errors that carry enough location to fix the input without reading a traceback."""

from __future__ import annotations


class CurateError(Exception):
    """Base error. ``exit_code`` maps to the CLI contract (2 = caller's input, 1 = internal)."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        details: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.details = details or {}

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        field = f"field '{self.field}': " if self.field else ""
        return f"{where}{field}{self.message}"

    def to_dict(self) -> dict:
        """The body of an HTTP error envelope (``details`` carries the location)."""
        details = dict(self.details)
        for key in ("file", "line", "field"):
            if getattr(self, key) is not None:
                details[key] = getattr(self, key)
        return {"code": self.code, "message": str(self), "details": details}

    code = "internal_error"


class InputError(CurateError):
    """The caller's input is wrong (bad file, unknown selector, bad parameter)."""

    exit_code = 2
    code = "invalid_input"


class NotFoundError(InputError):
    code = "not_found"


class ConflictError(InputError):
    code = "conflict"
