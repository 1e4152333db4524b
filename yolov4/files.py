"""Files a user names: text read as every editor writes it, and outputs checked up front.

Text (labels, data.yaml, names, list files, JSON, config files) is UTF-8, with or without the
byte-order mark that Windows editors put first. A command that writes checks, before its
long work and without creating anything, that it can write there and that no file it will
write is one of its inputs. Every problem is a one-line ValueError naming the file, which
``python -m yolov4`` prints as ``yolov4: error: ...``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml


def read_text(path: str | os.PathLike) -> str:
    """The text of a UTF-8 file, less a leading byte-order mark."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x})") from None


def read_json(path: str | os.PathLike) -> Any:
    """The content of a JSON file; a one-line ValueError saying where it is not JSON."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None


def read_yaml(path: str | os.PathLike) -> Any:
    """The content of a YAML file (None when empty); a one-line ValueError saying where it is not YAML."""
    try:
        return yaml.safe_load(read_text(path))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{path}: invalid YAML{where}: {getattr(error, 'problem', None) or error}") from None


def check_writable(path: str | os.PathLike, folder: bool = False) -> Path:
    """``path`` (a file, or a ``folder``) after checking that this process can create or replace
    it: the nearest part of it that exists must be a folder it may write in. Creates nothing."""
    path = Path(path)
    if not folder and path.is_dir():
        raise ValueError(f"{path} is a folder; name a file")
    if folder and path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file; name a folder")
    start = path if folder else path.parent
    existing = next(p for p in (start, *start.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"cannot write {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {path}: no permission to write in {existing}")
    return path


def check_not_inputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike | None]) -> None:
    """A one-line ValueError where a file a command would write is one of its ``inputs`` (the
    same file by its resolved path, or by a link to it): a command never writes over an input."""
    given = [Path(p) for p in inputs if p is not None]
    for output in map(Path, outputs):
        for source in given:
            same = output.resolve() == source.resolve()
            if same or (output.exists() and source.exists() and output.samefile(source)):
                raise ValueError(f"{output} would overwrite the input {source}; write it elsewhere")
