import numpy as np
import pytest

import minilucid as lucid
from minilucid.optim import lr_scheduler


def quadratic_step(optimizer, param):
    optimizer.zero_grad()
    ((param - 3.0) ** 2).sum().backward()
    optimizer.step()


@pytest.mark.parametrize(
    "make",
    [
        lambda p: lucid.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        lambda p: lucid.optim.Adam(p, lr=0.1),
        lambda p: lucid.optim.AdamW(p, lr=0.1),
    ],
)
def test_optimizers_minimize_a_quadratic(make):
    param = lucid.nn.Parameter(np.zeros(3, dtype=np.float32))
    optimizer = make([param])
    for _ in range(200):
        quadratic_step(optimizer, param)
    np.testing.assert_allclose(param.numpy(), 3.0, atol=0.05)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: lucid.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
        lambda p: lucid.optim.Adam(p, lr=0.1),
    ],
)
def test_state_dict_resumes_the_same_trajectory(make, tmp_path):
    a = lucid.nn.Parameter(np.zeros(3))
    opt_a = make([a])
    for _ in range(3):
        quadratic_step(opt_a, a)
    lucid.save({"optimizer": opt_a.state_dict(), "param": a.data}, tmp_path / "state.npz")
    restored = lucid.load(tmp_path / "state.npz")
    b = lucid.nn.Parameter(restored["param"])
    opt_b = make([b])
    opt_b.load_state_dict(restored["optimizer"])
    for _ in range(4):
        quadratic_step(opt_a, a)
        quadratic_step(opt_b, b)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_parameter_groups_have_their_own_rates():
    fast, slow = lucid.nn.Parameter(np.zeros(1)), lucid.nn.Parameter(np.zeros(1))
    opt = lucid.optim.SGD([{"params": [fast], "lr": 1.0}, {"params": [slow]}], lr=0.1)
    fast.grad, slow.grad = np.ones(1), np.ones(1)
    opt.step()
    assert fast.numpy()[0] == pytest.approx(-1.0) and slow.numpy()[0] == pytest.approx(-0.1)


def test_optimizer_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        lucid.optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        lucid.optim.SGD([lucid.nn.Parameter(np.zeros(1))], lr=0.1, nesterov=True)
    opt = lucid.optim.SGD([lucid.nn.Parameter(np.zeros(1))], lr=0.1)
    other = lucid.optim.SGD([lucid.nn.Parameter(np.zeros(1)), lucid.nn.Parameter(np.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="saved with 2 parameters does not fit one with 1"):
        opt.load_state_dict(other.state_dict())


def test_gradients_are_never_modified_in_place():
    p = lucid.nn.Parameter(np.ones(2))
    grad = np.array([1.0, 2.0])
    p.grad = grad
    lucid.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1).step()
    np.testing.assert_array_equal(grad, [1.0, 2.0])


def test_burn_in_is_darknets_warm_up_then_the_schedule():
    opt = lucid.optim.SGD([lucid.nn.Parameter(np.zeros(1))], lr=0.01)
    after = lr_scheduler.MultiStepLR(opt, milestones=[1500], gamma=0.1)
    burn = lr_scheduler.BurnIn(opt, burn_in=1000, power=4, after=after)
    rates = []
    for _ in range(2000):
        rates.append(burn.get_last_lr()[0])
        burn.step()
    assert rates[0] == 0.0
    assert rates[500] == pytest.approx(0.01 * 0.5**4)
    assert rates[999] == pytest.approx(0.01 * 0.999**4)
    assert rates[1000] == pytest.approx(0.01) and rates[1499] == pytest.approx(0.01)
    assert rates[1500] == pytest.approx(0.001)
    state = burn.state_dict()
    fresh = lr_scheduler.BurnIn(opt, burn_in=1000, power=4, after=after)
    fresh.load_state_dict(state)
    assert fresh.get_last_lr()[0] == pytest.approx(0.001)


def test_an_optimizer_saved_before_its_first_step_loads(tmp_path):
    params = [lucid.nn.Parameter(np.ones(3, np.float32))]
    lucid.save({"optimizer": lucid.optim.Adam(params, lr=0.1).state_dict()}, tmp_path / "o.npz")
    fresh = lucid.optim.Adam(params, lr=0.5)
    fresh.load_state_dict(lucid.load(tmp_path / "o.npz")["optimizer"])
    assert fresh.param_groups[0]["lr"] == 0.1 and fresh.state == {}
