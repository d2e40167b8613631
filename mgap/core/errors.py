"""User-facing errors: one line naming the problem and the fix, never a traceback."""

from __future__ import annotations


class MgapError(Exception):
    """An error the user can act on. The CLI prints `mgap: error: <message>` and exits."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")

    def one_line(self) -> str:
        text = self.message if self.hint is None else f"{self.message}; {self.hint}"
        return " ".join(text.split())


class UsageError(MgapError):
    """Bad arguments: exit code 2, like click's usage errors."""

    exit_code = 2


class ModelUnavailableError(MgapError):
    """Weights are neither cached nor local and cannot be downloaded."""


class DatasetError(MgapError):
    """The dataset root, split or annotation file is missing or malformed."""


class StoreError(MgapError):
    """A store file is missing, not HDF5, or inconsistent."""
