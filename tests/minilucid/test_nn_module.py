import numpy as np
import pytest

import minilucid as lucid
from minilucid import nn
from tests.conftest import DEVICES


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding="same", bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.Mish()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = Block()
        self.heads = nn.ModuleList([nn.Conv2d(4, 2, 1), nn.Conv2d(4, 3, 1)])
        self.extra = nn.ModuleDict({"fc": nn.Linear(4, 2)})
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))

    def forward(self, x):
        features = self.stem(x)
        return [head(features) for head in self.heads]


def test_parameters_come_in_registration_order():
    names = [name for name, _ in Net().named_parameters()]
    assert names == [
        "scale",
        "stem.conv.weight",
        "stem.bn.weight",
        "stem.bn.bias",
        "heads.0.weight",
        "heads.0.bias",
        "heads.1.weight",
        "heads.1.bias",
        "extra.fc.weight",
        "extra.fc.bias",
    ]
    assert names == [name for name, _ in Net().named_parameters()]  # deterministic


def test_state_dict_holds_parameters_and_buffers():
    net = Net()
    state = net.state_dict()
    assert "stem.bn.running_mean" in state and "stem.bn.running_var" in state
    assert len(state) == 12
    assert net.count_parameters() == 1 + 4 * 3 * 9 + 4 + 4 + (2 * 4 + 2) + (3 * 4 + 3) + (2 * 4 + 2)
    assert [name for name, _ in net.named_buffers()] == [
        "stem.bn.running_mean",
        "stem.bn.running_var",
    ]


def test_load_state_dict_copies_in_place():
    a, b = Net(), Net()
    weight = b.stem.conv.weight
    b.load_state_dict(a.state_dict())
    assert b.stem.conv.weight is weight  # same Parameter, so optimizers keep working
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_load_state_dict_reports_missing_unexpected_and_wrong_shapes():
    net = Net()
    state = dict(net.state_dict())
    del state["stem.bn.bias"]
    state["stem.bn.gamma"] = np.ones(4)
    with pytest.raises(KeyError, match=r"missing keys \['stem.bn.bias'\]; unexpected keys \['stem.bn.gamma'\]"):
        net.load_state_dict(state)
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == ["stem.bn.bias"] and result.unexpected_keys == ["stem.bn.gamma"]
    bad = dict(net.state_dict())
    bad["heads.0.weight"] = np.zeros((5, 4, 1, 1))
    with pytest.raises(ValueError, match=r"heads.0.weight: expected \(2, 4, 1, 1\), got \(5, 4, 1, 1\)"):
        net.load_state_dict(bad)


def test_train_eval_reach_every_module():
    net = Net().eval()
    assert all(not m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_batch_norm_uses_batch_statistics_in_train_and_running_ones_in_eval():
    bn = nn.BatchNorm2d(2)
    x = lucid.Tensor(np.random.default_rng(0).standard_normal((4, 2, 3, 3)).astype(np.float32) * 3 + 1)
    y = bn(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * x.numpy().mean(axis=(0, 2, 3)), rtol=1e-5)
    bn.eval()
    expected = (x.numpy() - bn.running_mean.numpy()[:, None, None]) / np.sqrt(
        bn.running_var.numpy()[:, None, None] + 1e-5
    )
    np.testing.assert_allclose(bn(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_running_variance_can_keep_the_variance_the_batch_was_normalized_with():
    x = lucid.Tensor(np.random.default_rng(1).standard_normal((2, 3, 2, 2)).astype(np.float32))
    pytorch_style, exact = nn.BatchNorm2d(3, momentum=1.0), nn.BatchNorm2d(3, momentum=1.0, unbiased_running_var=False)
    train_out = exact(x).numpy()
    pytorch_style(x)
    n = 2 * 2 * 2
    np.testing.assert_allclose(exact.running_var.numpy(), x.numpy().var(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(
        pytorch_style.running_var.numpy(), x.numpy().var(axis=(0, 2, 3)) * n / (n - 1), rtol=1e-5
    )
    np.testing.assert_allclose(exact.eval()(x).numpy(), train_out, rtol=1e-4, atol=1e-4)  # eval == train


def test_apply_visits_children_first():
    visited = []
    Net().apply(lambda m: visited.append(type(m).__name__))
    assert visited[-1] == "Net" and visited.index("Block") > visited.index("Conv2d")


def test_sequential_and_containers():
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU)
    assert seq(lucid.zeros(5, 3)).shape == (5, 2)
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    assert nn.Identity()(seq) is seq
    assert "Linear(3, 4, bias=True)" in repr(seq)


def test_reassigning_an_attribute_moves_it_between_registries():
    net = Net()
    net.scale = None
    assert "scale" not in dict(net.named_parameters())
    net.stem.bn.running_mean = np.full(4, 2.0, dtype=np.float32)
    assert isinstance(net.stem.bn.running_mean, lucid.Tensor)
    assert net.state_dict()["stem.bn.running_mean"][0] == 2.0


@pytest.mark.parametrize("device", DEVICES)
def test_to_device_moves_everything_in_place(device):
    net = Net()
    weight = net.stem.conv.weight
    net.to(device)
    assert net.stem.conv.weight is weight and weight.device == device
    assert net.stem.bn.running_var.device == device
    outputs = net(lucid.random.randn(2, 3, 6, 6, device=device))
    sum(o.sum() for o in outputs).backward()
    assert lucid.backend.device_of(weight.grad) == device
    net.to("cpu")
    assert weight.device == "cpu" and lucid.backend.device_of(weight.grad) == "cpu"


def test_gradients_reach_every_parameter_used():
    net = Net()
    outputs = net(lucid.random.randn(2, 3, 6, 6))
    (outputs[0].sum() + outputs[1].sum()).backward()
    used = [p for n, p in net.named_parameters() if not n.startswith(("extra", "scale"))]
    assert all(p.grad is not None and np.abs(p.grad).sum() > 0 for p in used)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
