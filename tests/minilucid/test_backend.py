import numpy as np
import pytest

import minilucid as lucid
from minilucid import backend
from tests.conftest import DEVICES


def test_numpy_arrays_use_numpy():
    assert backend.get_array_module(np.zeros(3)) is np
    assert backend.get_array_module(np.zeros(3), 1.0) is np
    assert backend.device_of(np.zeros(3)) == "cpu"


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match=r"device must be one of \('cpu', 'gpu'\), got 'cuda'"):
        lucid.Tensor([1.0], device="cuda")


def test_gpu_without_cupy_names_what_is_missing(monkeypatch):
    monkeypatch.setattr(backend, "_gpu_status", lambda: (False, "CuPy is not importable (test)"))
    with pytest.raises(backend.DeviceUnavailableError, match=r"'gpu' was requested but is not available: CuPy is"):
        lucid.Tensor([1.0], device="gpu")
    with pytest.raises(RuntimeError, match="CuPy is not importable"):
        lucid.zeros(2, 2).to("gpu")
    with pytest.raises(RuntimeError, match="CuPy is not importable"):
        lucid.nn.Linear(2, 2).to("gpu")


def test_cupy_installed_without_a_driver_is_not_usable(monkeypatch):
    """`import cupy` can work on a machine with no driver while the first array fails."""

    class BrokenRuntime:
        @staticmethod
        def getDeviceCount():  # noqa: N802  (CuPy's name)
            raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    class FakeCupy:
        __version__ = "13.0.0"

        class cuda:  # noqa: N801
            runtime = BrokenRuntime

    monkeypatch.setattr(backend, "cupy", FakeCupy)
    usable, reason = backend._gpu_status.__wrapped__()
    assert not usable
    assert "installed but the GPU is not usable" in reason
    assert "insufficient" in reason


def test_cupy_not_importable_says_how_to_install(monkeypatch):
    monkeypatch.setattr(backend, "cupy", None)
    monkeypatch.setattr(backend, "_CUPY_IMPORT_ERROR", ImportError("No module named 'cupy'"))
    usable, reason = backend._gpu_status.__wrapped__()
    assert not usable
    assert "gpu extra" in reason and "No module named 'cupy'" in reason


@pytest.mark.parametrize("device", DEVICES)
def test_arrays_move_between_devices(device):
    original = np.arange(6, dtype=np.float32).reshape(2, 3)
    moved = backend.to_device(original, device)
    assert backend.device_of(moved) == device
    np.testing.assert_array_equal(backend.as_numpy(moved), original)
    back = backend.to_device(moved, "cpu")
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, original)


@pytest.mark.parametrize("device", DEVICES)
def test_scatter_add_sums_repeated_indices(device):
    target = backend.to_device(np.zeros(4), device)
    backend.scatter_add(
        target,
        backend.to_device(np.array([0, 2, 2, 3, 2]), device),
        backend.to_device(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), device),
    )
    np.testing.assert_array_equal(backend.as_numpy(target), [1.0, 0.0, 10.0, 4.0])
