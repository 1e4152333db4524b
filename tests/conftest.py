"""Shared test setup.

``DEVICES`` parametrizes one test body over the CPU and the GPU. The GPU case carries the
``gpu`` marker and is skipped, visibly and with the reason, where CuPy or a GPU is missing;
on a GPU machine ``pytest -m gpu`` runs exactly those cases.
"""

from __future__ import annotations

import numpy as np
import pytest

from minilucid import backend

DEVICES = ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)]


def pytest_collection_modifyitems(config, items):
    if backend.gpu_available():
        return
    skip = pytest.mark.skip(reason=f"no usable GPU: {backend.gpu_status()}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def assert_close(ours, theirs, rtol: float, name: str = "") -> None:
    """Relative agreement: |ours - theirs| <= rtol * (|theirs| + max|theirs|) everywhere.

    The second term keeps near-zero elements of a large array from demanding a relative
    precision that float rounding cannot give.
    """
    ours = backend.as_numpy(ours.data if hasattr(ours, "data") and not isinstance(ours, np.ndarray) else ours)
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{name}: shape {ours.shape} != {theirs.shape}"
    scale = np.abs(theirs).max() if theirs.size else 0.0
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale, err_msg=name)
