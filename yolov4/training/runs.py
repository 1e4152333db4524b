"""Output folders: each training or prediction run writes into a folder of its own."""

from __future__ import annotations

from pathlib import Path


def run_folder(path: str | Path, exist_ok: bool = False) -> Path:
    """``path`` if it is new (or ``exist_ok``), else the first free ``path2``, ``path3``, ...,
    as Ultralytics numbers its runs, so that a run never mixes its files with an earlier one's."""
    path = Path(path)
    if exist_ok or not path.exists():
        return path
    if not path.name:  # '.', '' or '/': no name to number
        raise ValueError(
            f"'{path}' exists and has no name to number; name a new folder, or reuse it with exist_ok (--exist-ok)"
        )
    number = 2
    while path.with_name(f"{path.name}{number}").exists():
        number += 1
    return path.with_name(f"{path.name}{number}")
