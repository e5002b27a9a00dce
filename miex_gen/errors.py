"""The one error family that the ``miex`` CLI turns into a readable line.

Library code raises these for anything a user can fix (bad path, bad file, bad option);
the message says what went wrong and where, ``hint`` says how to fix it. Bugs stay ordinary
exceptions so that they keep their traceback.
"""

from __future__ import annotations

from pathlib import Path


class MiexError(Exception):
    """A user-facing error: ``message`` names what and where, ``hint`` how to fix it."""

    def __init__(self, message: str, *, hint: str | None = None, path: str | Path | None = None):
        self.message = message
        self.hint = hint
        self.path = Path(path) if path is not None else None
        super().__init__(self.__str__())

    def __str__(self) -> str:  # one line, always
        where = f"{self.path}: " if self.path is not None and str(self.path) not in self.message else ""
        text = f"{where}{self.message}"
        if self.hint:
            text += f" (fix: {self.hint})"
        return " ".join(text.split("\n"))


class ConfigError(MiexError):
    """An invalid configuration value; the message names the field."""


class DataError(MiexError):
    """Input data (images, tables, annotations, shards) that cannot be used."""


class FormatError(DataError):
    """A file that does not follow the miex dataset / pool / checkpoint format."""


class CheckpointError(MiexError):
    """A weights or training-state file that does not fit the model asked for."""


class DependencyError(MiexError):
    """An optional dependency or model file that is not available offline."""
