"""Hooks, filter and feature-map figures, saliency and occlusion in cnnbook.visualize."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from cnnbook.models import LeNet5, MnistCNN  # noqa: E402
from cnnbook.visualize import (  # noqa: E402
    capture_activations,
    edge_energy_fraction,
    occlusion,
    plot_feature_maps,
    plot_filters,
    saliency,
)


def test_capture_activations_records_layers_in_order_and_removes_hooks() -> None:
    torch.manual_seed(0)
    model = MnistCNN().train()
    x = torch.rand(2, 1, 28, 28)
    acts = capture_activations(model, x, (nn.Conv2d, nn.MaxPool2d))
    assert list(acts) == ["layer1.0", "layer1.2", "layer2.0", "layer2.2"]
    assert [tuple(a.shape) for a in acts.values()] == [
        (2, 32, 28, 28), (2, 32, 14, 14), (2, 64, 14, 14), (2, 64, 7, 7),
    ]  # fmt: skip
    assert torch.allclose(acts["layer1.0"], model.layer1[0](x))
    assert model.training  # mode restored
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="no submodules"):
        capture_activations(model, x, nn.LSTM)


def test_capture_activations_names_repeated_calls() -> None:
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(3, 3), relu, nn.Linear(3, 3), relu)
    acts = capture_activations(model, torch.rand(1, 3), nn.ReLU)
    assert list(acts) == ["1", "1#2"]


def test_plots_return_figures() -> None:
    model = LeNet5()
    fig = plot_filters(model.features[0].weight, ncols=3, title="filters")
    assert len([ax for ax in fig.axes if ax.images]) == 6
    fig2 = plot_filters(torch.randn(4, 3, 5, 5))
    assert fig2.axes[0].images[0].get_array().shape == (5, 5, 3)
    fig3 = plot_feature_maps(torch.rand(1, 20, 7, 7), max_maps=10)
    assert len([ax for ax in fig3.axes if ax.images]) == 10
    plt.close("all")
    with pytest.raises(ValueError, match="weight"):
        plot_filters(torch.zeros(3, 5, 5))
    with pytest.raises(ValueError, match="maps"):
        plot_feature_maps(torch.zeros(2, 3, 5, 5))


def _pixel_model() -> nn.Module:
    """Class 1's score is 5 * pixel (3, 4); class 0's is constant: only that pixel matters."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.zero_()
        model[1].weight[1, 3 * 8 + 4] = 5.0
    return model


def test_saliency_is_the_input_gradient() -> None:
    model = _pixel_model()
    images = torch.rand(2, 1, 8, 8)
    maps = saliency(model, images, target=[1, 1])
    assert maps.shape == (2, 8, 8)
    expected = torch.zeros(8, 8)
    expected[3, 4] = 5.0
    assert torch.allclose(maps, expected.expand(2, 8, 8))
    assert torch.count_nonzero(saliency(model, images, target=[0, 0])) == 0
    with pytest.raises(ValueError, match="target"):
        saliency(model, images, target=[1])


def test_occlusion_finds_the_pixel_that_matters() -> None:
    model = _pixel_model()
    images = torch.ones(1, 1, 8, 8)
    maps = occlusion(model, images, target=[1], patch_size=2, stride=2)
    assert maps.shape == (1, 4, 4)
    peak = divmod(int(maps[0].argmax()), 4)
    assert peak == (1, 2)  # the patch with top-left (2, 4) covers pixel (3, 4)
    assert (maps[0] > 1e-6).sum() == 1


def test_edge_energy_fraction_of_known_kernels() -> None:
    prewitt = torch.tensor([[-1.0, 0.0, 1.0]] * 3)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    diagonal = torch.tensor([[0.0, 1.0, 2.0], [-1.0, 0.0, 1.0], [-2.0, -1.0, 0.0]])
    centre = torch.zeros(3, 3)
    centre[1, 1] = 1.0
    kernels = torch.stack([prewitt, -3 * prewitt.T, sobel, diagonal, torch.ones(3, 3), centre])
    fraction = edge_energy_fraction(kernels.view(2, 3, 3, 3))
    assert fraction.shape == (2, 3)
    expected = torch.tensor([[1.0, 1.0, 64 / 6 / 12], [1.0, 0.0, 0.0]])
    assert torch.allclose(fraction, expected, atol=1e-6)
    # Rectangular kernels and all-zero kernels work; 1x1 kernels are refused.
    assert torch.allclose(edge_energy_fraction(torch.tensor([[[[-1.0, 1.0]]]])), torch.ones(1, 1))
    assert edge_energy_fraction(torch.zeros(1, 1, 3, 3)).item() == 0.0
    with pytest.raises(ValueError, match="1x1"):
        edge_energy_fraction(torch.ones(2, 2, 1, 1))
    with pytest.raises(ValueError, match="weight"):
        edge_energy_fraction(torch.ones(3, 3))


def test_edge_energy_fraction_of_random_kernels_is_two_ninths() -> None:
    generator = torch.Generator().manual_seed(0)
    random = torch.randn(20_000, 1, 3, 3, generator=generator)
    assert abs(edge_energy_fraction(random).mean().item() - 2 / 9) < 0.01
    # Scale and sign do not matter.
    assert torch.allclose(edge_energy_fraction(-5 * random), edge_energy_fraction(random))
