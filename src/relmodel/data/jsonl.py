"""Read and write JSONL files of schema rows, with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from relmodel import storage
from relmodel.errors import DataError, validation_problems

Row = TypeVar("Row", bound=BaseModel)


def read_jsonl(uri: str, model: type[Row]) -> list[Row]:
    """Every row of `uri` validated as `model`; the first bad row raises DataError."""
    rows: list[Row] = []
    for number, line in enumerate(storage.read_text(uri).splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{uri}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(raw, dict):
            raise DataError(f"{uri}:{number}: expected a JSON object, got {type(raw).__name__}")
        try:
            rows.append(model.model_validate(raw))
        except ValidationError as exc:
            raise DataError(f"{uri}:{number}: {'; '.join(validation_problems(exc))}") from exc
    return rows


def write_jsonl(uri: str, rows: Iterable[BaseModel]) -> int:
    """Write rows atomically; returns the number written."""
    count = 0
    with storage.atomic_write(uri) as handle:
        for row in rows:
            handle.write(row.model_dump_json() + "\n")
            count += 1
    return count

