"""``save`` and ``load``: nested dicts of arrays as ``.npz`` files, never pickled.

Nested keys are joined with "/" (``{"model": {"conv.weight": w}}`` -> ``"model/conv.weight"``);
list items are stored under ``[i]``. Python numbers, bools and strings become 0-d arrays
and come back as Python values. The file is written to a temporary name in the same folder
and renamed into place, so a crash mid-write never leaves a half-written file behind.
Loading uses ``allow_pickle=False``: a file cannot make this process run code.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy

from minilucid import backend
from minilucid.tensor import Tensor

SEPARATOR = "/"


def _flatten(value: Any, prefix: str, out: dict[str, numpy.ndarray]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            key = str(key)
            if SEPARATOR in key or key.startswith("["):
                raise ValueError(f"save: key {key!r} may not contain {SEPARATOR!r} or start with '['")
            _flatten(item, f"{prefix}{SEPARATOR}{key}" if prefix else key, out)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}{SEPARATOR}[{index}]" if prefix else f"[{index}]", out)
    elif value is None:
        return
    else:
        array = backend.as_numpy(value.data if isinstance(value, Tensor) else value)
        if array.dtype == object:
            raise TypeError(f"save: {prefix!r} holds a {type(value).__name__}, which needs pickle")
        out[prefix] = array


def _unflatten(flat: dict[str, numpy.ndarray]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, array in flat.items():
        parts = key.split(SEPARATOR)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = array.item() if array.ndim == 0 else array
    return _lists_back(root)


def _lists_back(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = {k: _lists_back(v) for k, v in node.items()}
    if node and all(k.startswith("[") and k.endswith("]") for k in node):
        return [node[k] for k in sorted(node, key=lambda k: int(k[1:-1]))]
    return node


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place.

    Readers see the old file or the new one, never half of one; on any error the temporary
    file is removed and ``path`` is untouched. The file gets the usual permissions (0666
    less the umask), not the private ones of a temporary file.
    """
    path = os.fspath(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".", suffix=".tmp")
    except OSError as error:
        raise _about(error, path) from None
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        if isinstance(error, OSError) and error.filename in (None, temporary):
            raise _about(error, path) from None
        raise


def _about(error: OSError, path: str) -> OSError:
    """``error`` (about the temporary file, or about none) as the same error about ``path``,
    the file the caller asked for: a disk-full or missing-folder error names that file."""
    return type(error)(error.errno, error.strerror, path) if error.errno else error


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: readers see the old file or the new one."""
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))


def save(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a (nested) dict of arrays, Tensors and plain values to ``path`` atomically."""
    if not isinstance(state, dict):
        raise TypeError(f"save expects a dict, got {type(state).__name__}")
    flat: dict[str, numpy.ndarray] = {}
    _flatten(state, "", flat)
    write_atomically(path, lambda file: numpy.savez(file, **flat))


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a file written by ``save``; NumPy arrays come back on the CPU."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file {path!r}")
    if os.path.isfile(path) and not zipfile.is_zipfile(path):  # else NumPy tries pickle and suggests allowing it
        raise ValueError(f"load: {path!r} is not a valid .npz archive written by save(): it is not a zip file")
    try:
        with numpy.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, numpy.lib.npyio.NpzFile):
                raise ValueError("it holds a single array, not a .npz archive of named arrays")
            flat = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise ValueError(f"load: {path!r} is not a valid .npz archive written by save(): {error}") from error
    return _unflatten(flat)
