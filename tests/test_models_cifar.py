"""Tests for the CIFAR-10 networks and the recipe's pieces: shapes, parameter counts, whitening."""

from __future__ import annotations

import pytest
import torch

from cnnbook.cifar import CifarRecipe, build_optimizer, one_cycle
from cnnbook.models import CifarNet, PyTorchTutorialNet, TutorialBNCNN
from cnnbook.train import count_parameters


@pytest.mark.parametrize("batch", [1, 2])
def test_output_shapes(batch: int) -> None:
    x = torch.randn(batch, 3, 32, 32)
    for model in (PyTorchTutorialNet(), TutorialBNCNN(), CifarNet(widths=(8, 16, 16))):
        model.eval()
        assert model(x).shape == (batch, 10)


def test_pytorch_tutorial_net_layers_and_parameter_count() -> None:
    # The official tutorial's Net: conv 3->6 (5x5), conv 6->16 (5x5), Linear 400-120-84-10.
    model = PyTorchTutorialNet()
    expected = (
        (3 * 6 * 25 + 6) + (6 * 16 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    )
    assert expected == 62_006
    assert count_parameters(model) == expected
    with torch.no_grad():
        x = model.pool(torch.relu(model.conv1(torch.zeros(1, 3, 32, 32))))
        assert x.shape == (1, 6, 14, 14)
        assert model.pool(torch.relu(model.conv2(x))).shape == (1, 16, 5, 5)
    assert PyTorchTutorialNet(num_classes=4)(torch.rand(2, 3, 32, 32)).shape == (2, 4)


def test_pytorch_tutorial_net_rejects_other_sizes() -> None:
    with pytest.raises(ValueError, match="expects 400 features"):
        PyTorchTutorialNet()(torch.rand(1, 3, 28, 28))


def test_tutorial_bn_parameter_count() -> None:
    # conv 3*18*9 (no bias) + BN 2*18 + fc1 4608*64 (no bias) + BN 2*64 + fc2 64*10 + 10
    expected = 3 * 18 * 9 + 2 * 18 + 4608 * 64 + 2 * 64 + 64 * 10 + 10
    assert count_parameters(TutorialBNCNN()) == expected


@pytest.mark.parametrize("widths", [(16, 32, 64), (64, 256, 256)])
def test_cifarnet_parameter_count(widths: tuple[int, int, int]) -> None:
    a, b, c = widths
    convs = 24 * a * 9 + a * a * 9 + a * b * 9 + b * b * 9 + b * c * 9 + c * c * 9
    bn_shifts = 2 * (a + b + c)  # BatchNorm scales are frozen at 1
    whiten = 24 * 3 * 2 * 2 + 24
    expected = whiten + convs + bn_shifts + c * 10
    model = CifarNet(widths=widths)
    assert count_parameters(model) == expected
    assert count_parameters(model, trainable_only=False) == expected + 2 * (a + b + c)


def test_cifarnet_rejects_bad_input_and_widths() -> None:
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        CifarNet(widths=(8, 8, 8))(torch.randn(1, 3, 28, 28))
    with pytest.raises(ValueError, match="widths"):
        CifarNet(widths=(8, 8))  # type: ignore[arg-type]


def test_whitening_decorrelates_patches() -> None:
    generator = torch.Generator().manual_seed(0)
    # Correlated channels: the whitened 2x2 patches must have (near) identity covariance.
    base = torch.rand(64, 1, 32, 32, generator=generator)
    images = torch.cat(
        [
            base,
            0.5 * base + 0.3 * torch.rand(64, 1, 32, 32, generator=generator),
            torch.rand(64, 1, 32, 32, generator=generator),
        ],
        1,
    )
    model = CifarNet(widths=(8, 8, 8))
    model.init_whitening(images, eps=0.0)
    with torch.no_grad():
        out = model.whiten(images)[:, :12]  # the first 12 filters; the rest are their negatives
    features = out.permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = torch.cov(features.T)
    assert torch.allclose(covariance, torch.eye(12), atol=2e-2)
    assert torch.equal(model.whiten.weight[12:], -model.whiten.weight[:12])


def test_one_cycle_shape() -> None:
    factor = one_cycle(100, start=0.2, peak=1.0, end=0.0, peak_at=0.25)
    values = [factor(step) for step in range(101)]
    assert values[0] == pytest.approx(0.2)
    assert max(values) == pytest.approx(1.0) and values.index(max(values)) == 25
    assert values[-1] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="total_steps"):
        one_cycle(0)


def test_optimizer_gives_norm_shifts_a_larger_rate() -> None:
    model = CifarNet(widths=(8, 8, 8))
    model.whiten.weight.requires_grad_(False)
    optimizer = build_optimizer(model, CifarRecipe(batch_size=1024, lr=1.0, bias_lr_scale=64))
    weights, shifts = optimizer.param_groups
    assert weights["lr"] == 1.0 and shifts["lr"] == 64.0
    assert len(shifts["params"]) == 6  # one shift per BatchNorm layer
    n_weights = sum(p.numel() for p in weights["params"])
    assert n_weights + sum(p.numel() for p in shifts["params"]) == count_parameters(model)
