"""Recognizer models: shapes, gradients, parameter counts, local pretrained weights, registry errors."""

from __future__ import annotations

import pytest
import torch

from miex_gen.errors import CheckpointError, ConfigError
from recognizers.models import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


CASES = [
    ("branches", {"size": 32}, (3, 2, 3, 32, 32)),
    ("apex", {"size": 32}, (3, 1, 3, 32, 32)),
    ("apex", {"size": 32, "in_channels": 1}, (3, 1, 1, 32, 32)),
    ("ststnet", {}, (3, 3, 28, 28)),
    ("off_apexnet", {}, (3, 2, 28, 28)),
]


@pytest.mark.parametrize("name,options,shape", CASES)
def test_forward_backward_shapes_and_gradients(name, options, shape):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, **options)
    spec = model.input_spec
    assert (spec.channels, spec.size) == ((shape[2], shape[3]) if spec.kind == "frames" else (shape[1], shape[2]))
    x = torch.randn(*shape, requires_grad=True)
    logits = model(x)
    assert logits.shape == (3, 3)
    loss, terms = model.loss(logits, torch.tensor([0, 1, 2]), x)
    assert set(terms) == {"ce"} and torch.isfinite(loss)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"
    assert x.grad.abs().sum() > 0


def test_parameter_counts_and_layouts():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(create_model("ststnet")) == 1683  # MER_PROTOCOL §8.2 / paper 0.00167 M
    assert count(create_model("off_apexnet")) == 2_664_475  # our reading of §8.3 (paper table: 2.77 M)
    branches, apex = create_model("branches"), create_model("apex")
    assert count(branches.onset_trunk) == count(apex.trunk) == 11_176_512  # ResNet-18 without fc
    assert branches.onset_trunk.conv1.weight.data_ptr() != branches.apex_trunk.conv1.weight.data_ptr()
    head = [m for m in branches.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in head] == [(1024, 128), (128, 32), (32, 3)]
    assert all(float(m.bias.detach().abs().sum()) == 0 for m in head)


def test_branches_uses_onset_and_apex_separately():
    torch.manual_seed(0)
    model = create_model("branches", size=32).eval()
    x = torch.randn(2, 2, 3, 32, 32)
    y = x.clone()
    y[:, 0] += 1.0  # change only the onset
    assert not torch.allclose(model(x), model(y))
    apex = create_model("apex", size=32).eval()
    assert torch.allclose(apex(x), apex(y))  # the apex model ignores the onset


def test_pretrained_from_local_file(tmp_path):
    from torchvision.models import resnet18

    reference = resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = create_model("apex", pretrained=str(path))
    assert torch.equal(model.trunk.conv1.weight, reference.conv1.weight)
    grey = create_model("apex", pretrained=str(path), in_channels=1)
    assert torch.allclose(grey.trunk.conv1.weight[:, 0], reference.conv1.weight.sum(1))
    with pytest.raises(ConfigError, match="not found"):
        create_model("branches", pretrained=str(tmp_path / "missing.pth"))
    torch.save({"foo": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="not a torchvision ResNet-18"):
        create_model("apex", pretrained=str(tmp_path / "bad.pth"))


def test_registry_errors():
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        create_model("nope")
    with pytest.raises(ConfigError, match="bad option"):
        create_model("ststnet", depth=3)
