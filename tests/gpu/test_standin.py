"""The CuPy stand-in refuses what CuPy refuses and counts what costs time on a GPU.

These run on the stand-in itself (whatever the machine), since what they check is the
stand-in: if it were lenient, the GPU tests that run on it would prove nothing.
"""

import numpy as np
import pytest

from tests.conftest import REAL_CUPY
from tests.gpu import standin

cp = standin.cupy


def test_a_device_array_is_not_a_numpy_array_and_will_not_become_one():
    a = cp.arange(6, dtype=cp.float32).reshape(2, 3)
    assert not isinstance(a, np.ndarray)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(a)
    assert isinstance(a.data, standin.MemoryPointer)
    with pytest.raises(TypeError):
        a.data[0]  # a pointer, not an array


@pytest.mark.parametrize(
    "mix",
    [
        lambda a, h: a + h,
        lambda a, h: h * a,
        lambda a, h: cp.maximum(a, h),
        lambda a, h: np.maximum(h, a),
        lambda a, h: a.__setitem__(slice(None), h),
        lambda a, h: a[np.array([0, 1])],
    ],
    ids=["op", "reflected-op", "cupy-ufunc", "numpy-ufunc", "assignment", "host-index"],
)
def test_host_arrays_meeting_device_arrays_raise(mix):
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        mix(cp.ones((2, 3), dtype=cp.float32), np.ones((2, 3), dtype=np.float32))


def test_scalars_mix_freely_and_keep_the_dtype():
    a = cp.ones(3, dtype=cp.float32)
    for scalar in (2, 2.5, np.float32(2), np.asarray(2.0, dtype=np.float32)):
        assert (a * scalar).dtype == np.float32
    assert isinstance(np.exp(a), standin.ndarray)  # NumPy's ufuncs dispatch to CuPy, as with CuPy


def test_reductions_and_integer_indexing_give_0d_device_arrays():
    a = cp.arange(4, dtype=cp.float32)
    for value in (a.sum(), a.max(), cp.mean(a), a[1]):
        assert isinstance(value, standin.ndarray) and value.shape == ()


def test_only_cupys_names_exist():
    with pytest.raises(AttributeError, match="no attribute 'add_docstring'"):
        getattr(cp, "add_docstring")  # noqa: B009  (in NumPy, not in CuPy)
    with pytest.raises(AttributeError, match="no attribute 'itemset'"):
        getattr(cp.ones(2), "itemset")  # noqa: B009  (a NumPy ndarray method CuPy lacks)
    assert cp.take_along_axis is not None and cp.ones(2).ravel is not None


def test_copies_and_syncs_are_counted():
    with standin.counting() as counts:
        a = cp.asarray(np.ones((4, 4), dtype=np.float32))  # h2d
        b = a * 2 + cp.zeros((4, 4), dtype=cp.float32)  # on the device: nothing
        assert counts.h2d == 1 and counts.syncs == 0
        float(b.sum())
        bool(b[0, 0] > 1)
        b[b > 1]
        cp.nonzero(b)
        cp.bincount(cp.arange(3))
        cp.unique(b)
        b.get()
    assert counts.syncs == 7, counts.events
    assert counts.d2h == 1 and counts.d2h_bytes == [64]


def test_the_names_match_a_real_cupy_where_one_is_installed():
    cupy = REAL_CUPY
    if cupy is None:
        pytest.skip("CuPy is not installed here; cupy_api.json was read off CuPy 14.2")
    missing = [name for name in standin.API["cupy"] if not hasattr(cupy, name)]
    assert missing == [], f"names the stand-in allows but this CuPy {cupy.__version__} lacks: {missing}"
