"""Storage through fsspec URIs (file://, s3://, gs://, memory://...), with atomic writes.

Every step writes its outputs with `atomic_write`: readers never see a half-written file,
and a crash leaves at most a stray temporary file, never a truncated output.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterator
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs

from relmodel.errors import DataError


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = url_to_fs(uri)
    return fs, path


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return bool(fs.exists(path))


def read_text(uri: str) -> str:
    fs, path = filesystem(uri)
    try:
        with fs.open(path, "r", encoding="utf-8") as handle:
            return str(handle.read())
    except FileNotFoundError as exc:
        raise DataError(f"{uri}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{uri}: cannot read: {exc}") from exc


@contextlib.contextmanager
def atomic_write(uri: str, mode: str = "w") -> Iterator[IO[Any]]:
    """Open `uri` for writing; the file appears under its name only if the block succeeds."""
    fs, path = filesystem(uri)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    kwargs = {"encoding": "utf-8"} if "b" not in mode else {}
    try:
        with fs.open(tmp, mode, **kwargs) as handle:
            yield handle
        if fs.protocol in ("file", ("file", "local")) or "file" in fs.protocol:
            os.replace(tmp, path)  # atomic on POSIX
        else:
            fs.mv(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(tmp)
        raise


def write_text(uri: str, text: str) -> None:
    with atomic_write(uri) as handle:
        handle.write(text)


def sha256_of(uri: str) -> str:
    fs, path = filesystem(uri)
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
