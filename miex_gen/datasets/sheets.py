"""Annotation spreadsheets read by header name, with the header row found by content.

Why: releases of the same dataset differ in file name, header row (SAMM's is row 14 in one
release and row 1 in another), column order and blank columns (CASME II). Looking columns up by
(normalised) name and finding the header row by the names it must contain survives all of them.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError

HEADER_SEARCH_ROWS = 40


def norm(name: Any) -> str:
    """``"Onset Frame"``, ``"OnsetFrame"``, ``"onset_frame"`` -> ``"onsetframe"``."""
    return re.sub(r"[^a-z0-9]", "", str(name or "").lower())


@dataclass(frozen=True)
class SheetRow:
    """One data row: ``number`` is the 1-based row number in the file (as a spreadsheet shows it)."""

    number: int
    values: dict[str, Any]

    def get(self, *names: str) -> Any:
        for name in names:
            value = self.values.get(norm(name))
            if value is not None and str(value).strip() != "":
                return value
        return None


def _raw_rows(path: Path) -> list[tuple[Any, ...]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                return [tuple(row) for row in csv.reader(handle)]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"cannot read annotation table {path}: {exc}", path=path) from exc
    if suffix == ".xls":
        raise DataError(f"{path} is an old Excel .xls file, which miex does not read",
                        hint="open it and save it as .xlsx (or export a .csv with the same columns)", path=path)
    try:
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile/KeyError/InvalidFileException for broken files
        raise DataError(f"cannot read spreadsheet {path}: {type(exc).__name__}: {exc}",
                        hint="check that the file is a complete .xlsx (re-download or re-save it)", path=path) from exc
    try:
        sheet = book.worksheets[0]
        return [tuple(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()


def read_table(path: Path, required: dict[str, tuple[str, ...]], *, what: str) -> tuple[list[SheetRow], dict[str, str]]:
    """Rows of the first sheet below the header row that names every ``required`` column.

    ``required`` maps a field to its accepted header spellings. Returns the rows (values keyed by
    normalised header) and ``{field: normalised header found}``. Rows that are entirely blank are dropped.
    """
    if not path.is_file():
        raise DataError(f"{what} annotation not found: {path}", hint="check the dataset root layout", path=path)
    raw = _raw_rows(path)
    wanted = {field: {norm(a) for a in aliases} for field, aliases in required.items()}
    for index, row in enumerate(raw[:HEADER_SEARCH_ROWS]):
        cells = [norm(c) for c in row]
        found = {}
        for field, aliases in wanted.items():
            match = next((c for c in cells if c in aliases), None)
            if match is None:
                break
            found[field] = match
        else:
            header = cells
            rows = []
            for number, values in enumerate(raw[index + 1:], start=index + 2):
                if not any(v is not None and str(v).strip() for v in values):
                    continue
                mapped = {}
                for name, value in zip(header, values):
                    if name and name not in mapped:  # blank header columns are ignored
                        mapped[name] = value
                rows.append(SheetRow(number, mapped))
            return rows, found
    names = "; ".join(f"{f} ({'/'.join(a[:3])})" for f, a in required.items())
    raise DataError(f"{path}: no header row naming {names} in the first {HEADER_SEARCH_ROWS} rows",
                    hint=f"is this the {what} annotation spreadsheet?", path=path)


def as_int(value: Any) -> int | None:
    """Spreadsheet cell -> int; ``None`` for blanks and markers like ``/``, ``-``, ``-1``, ``n/a``."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if value != value or value < 0:
            return None
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.0+)?", text):
        return int(float(text))
    return None
