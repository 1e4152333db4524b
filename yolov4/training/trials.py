"""Short training runs made many times over, as ``ablate`` and ``evolve`` make them.

A trial is a dict of ``TrainConfig`` settings, trained in a folder of its own and scored on
the held-out split (``train_and_score``). The commands that run trials write each result as
soon as it exists (``write_json``), so a rerun skips what is done; ``time_left`` turns the
runs done so far into an estimate for the rest.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from minilucid.serialization import write_text_atomically
from yolov4.files import read_json
from yolov4.training.settings import TrainConfig
from yolov4.training.trainer import Trainer

# What a trial reports: COCO mAP@[.5:.95], mAP@0.5 and mAP@0.75 on the held-out split.
METRICS = ("map", "map50", "map75")


def plain(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` as JSON and YAML write them (tuples become lists), for storing and comparing."""
    return json.loads(json.dumps(settings))


def resolved(settings: dict[str, Any]) -> dict[str, Any]:
    """Every TrainConfig setting a trial of ``settings`` runs with (defaults filled in, values
    checked; evaluated once, at its end), less where it writes: what two results must share to
    be the same trial."""
    config = TrainConfig(**settings).to_dict()
    for key in ("out", "exist_ok"):
        config.pop(key)
    config["eval_every"] = config["epochs"]
    return plain(config)


def train_and_score(settings: dict[str, Any], out: str | Path, keep_checkpoints: bool = False) -> dict[str, float]:
    """Train a run of ``settings`` in the folder ``out`` and return its held-out ``map``,
    ``map50``, ``map75`` (measured once, after the last epoch) and ``seconds``. A run that an
    earlier attempt left unfinished in ``out`` (its ``last.npz``) is continued, not restarted.
    The trainer's own printing goes to ``out/output.txt``; the checkpoints are deleted at the end
    unless ``keep_checkpoints``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(**{**resolved(settings), "out": str(out), "exist_ok": True})
    last = out / "last.npz"
    start = time.perf_counter()
    with open(out / "output.txt", "a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        trainer = Trainer(config, progress=False, resuming=last.is_file())
        if last.is_file():
            trainer.resume(last)
        history = trainer.fit()
    final = history[-1]
    if not keep_checkpoints:
        for name in ("last.npz", "best.npz"):
            (out / name).unlink(missing_ok=True)
    return {**{key: float(final[key]) for key in METRICS}, "seconds": time.perf_counter() - start}


def write_json(path: str | Path, content: Any) -> Path:
    """``content`` as indented JSON at ``path``, written atomically (its folder made if need be)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(content, indent=2) + "\n")
    return path


def read_result(path: str | Path) -> dict[str, Any] | None:
    """The result stored at ``path``, or None where there is none yet."""
    return read_json(path) if Path(path).is_file() else None


def time_left(seconds: list[float], remaining: int) -> str:
    """An estimate of the time the ``remaining`` runs take, from the ``seconds`` of runs done."""
    if not seconds or remaining <= 0:
        return "nothing left" if remaining <= 0 else "no estimate yet"
    left = sum(seconds) / len(seconds) * remaining
    if left < 90:
        return f"about {left:.0f} s left"
    if left < 5400:
        return f"about {left / 60:.0f} min left"
    return f"about {left / 3600:.1f} h left"
