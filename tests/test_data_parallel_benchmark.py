"""benchmarks/data_parallel.py: its shared step trains the model it times, and leaves no process."""

import os

import numpy as np
import pytest

from benchmarks.data_parallel import shared_step
from benchmarks.model import build
from tests.minilucid.test_data_parallel import running


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forked replicas need fork(); this OS has none")
def test_the_shared_step_updates_the_model_and_its_replicas_end():
    model = build("small")
    before = [p.data.copy() for p in model.parameters()]
    step, replicas = shared_step(model, batch=2, size=64, processes=2)
    pids = [process.pid for process in replicas.processes]
    try:
        step()
        assert all(p.grad is not None for p in model.parameters())  # ours and the replica's, added
        assert any(not np.array_equal(p.data, b) for p, b in zip(model.parameters(), before, strict=True))
    finally:
        replicas.close()
    assert not any(running(pid) for pid in pids)
