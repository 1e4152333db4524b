"""benchmarks/profile_step.py --torch: both steps' time per layer, matched by name.

The comparison is only as good as its matching: PyTorch's aten operations must land on the
layer and phase minilucid's Functions time, with nothing counted twice.
"""

import pytest

torch = pytest.importorskip("torch")
from benchmarks import profile_step  # noqa: E402
from benchmarks.model import build, minilucid_step, torch_step  # noqa: E402
from benchmarks.torch_twin import twin_of  # noqa: E402


def test_comparison_rows_put_each_layer_beside_its_twin_and_keep_the_rest():
    ours = {"Conv2d.backward": 6.0, "Conv2d.forward": 3.0, "Mish.forward": 1.0, "Add.forward": 0.5}
    theirs = {"Conv2d.backward": 4.0, "Conv2d.forward": 2.0, "Mish.forward": 2.0}
    rows = profile_step.comparison_rows(ours, 12.0, theirs, 10.0)
    assert [row[0] for row in rows[:3]] == ["Conv2d.backward", "Conv2d.forward", "Mish.forward"]
    assert rows[0][1:] == ["6.000", "4.000", "1.50"]
    assert rows[2][1:] == ["1.000", "2.000", "0.50"]
    assert rows[-2][1:] == ["2.000", "2.000", "1.00"]  # Add is not compared: it stays in the rest
    assert rows[-1][1:] == ["12.000", "10.000", "1.20"]


def profile_both(kind: str, repeats: int = 1):
    """(minilucid's timings, the twin's timings, the twin's wall time) for the small model at 64."""
    model = build("small")
    ours_step = minilucid_step(model, kind, 1, 64)
    ours_step()
    with profile_step.instrumented(profile_step.defaultdict(float)) as ours:
        ours_step()
    twin_step = torch_step(twin_of(model), kind, 1, 64)
    twin_step()
    theirs, wall = profile_step.torch_timings(twin_step, kind, repeats)
    return ours, theirs, wall


@pytest.mark.slow
def test_both_profiles_find_the_same_layers_in_a_training_step():
    ours, theirs, wall = profile_both("train")

    for layer in ("Conv2d", "BatchNormTrain", "Mish", "LeakyReLU"):
        for phase in ("forward", "backward"):
            assert ours[f"{layer}.{phase}"] > 0, f"minilucid ran no {layer}.{phase}"
            assert theirs[f"{layer}.{phase}"] > 0, f"no PyTorch operation was taken for {layer}.{phase}"
    assert theirs["MaxPool2d.forward"] > 0  # the SPP block
    # MaxPool2d's backward is inherited from its reference: it counts under the class that ran it.
    assert ours["MaxPool2d.backward"] > 0 and not any("Reference" in key for key in ours)
    assert sum(theirs.values()) < wall


@pytest.mark.slow
def test_an_eval_forward_pass_compares_eval_batch_norm():
    ours, theirs, wall = profile_both("forward", repeats=3)

    assert ours["BatchNormEval.forward"] > 0 and theirs["BatchNormEval.forward"] > 0
    assert "BatchNormTrain.forward" not in theirs  # eval-mode batch_norm is counted once, as eval
    assert not any(key.endswith(".backward") for key in theirs)
    rows = profile_step.comparison_rows(ours, 1.0, theirs, wall, "forward")
    assert "BatchNormEval.forward" in [row[0] for row in rows]
    # In a forward pass convolution is most of the time: an operation counted with the ones it
    # calls (convolution, _convolution, mkldnn_convolution) would add up to more than the pass.
    # (That the repeats are averaged is checked on a one-convolution step below: this small
    # model's pass is mostly Python, so three unaveraged passes can stay under one's wall time.)
    assert 0 < sum(theirs.values()) < wall


def test_instrumenting_ends_with_the_block():
    from minilucid.nn.functional.conv import Conv2d

    forward = Conv2d.__dict__["forward"]
    with profile_step.instrumented(profile_step.defaultdict(float)):
        assert Conv2d.__dict__["forward"] is not forward
    assert Conv2d.__dict__["forward"] is forward


def test_torch_timings_average_their_repeats():
    image, weight = torch.randn(1, 16, 64, 64), torch.randn(32, 16, 3, 3)
    timings, wall = profile_step.torch_timings(lambda: torch.nn.functional.conv2d(image, weight), "forward", 4)
    # A step that is one convolution: its average time is most of one step's wall time. Four
    # steps' time, not averaged, would be more than one step's wall time.
    assert 0.3 * wall < timings["Conv2d.forward"] <= wall
