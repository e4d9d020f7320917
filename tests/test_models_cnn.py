"""Shapes, parameter counts and input checks of the tutorial CNN and the MNIST CNN."""

from __future__ import annotations

import pytest
import torch

from cnnbook.models import MnistBNCNN, MnistCNN, TutorialCNN
from cnnbook.train import count_parameters


def conv_parameters(in_channels: int, out_channels: int, kernel_size: int) -> int:
    """Weights (out * in * k * k) plus one bias per output channel."""
    return out_channels * in_channels * kernel_size * kernel_size + out_channels


def linear_parameters(in_features: int, out_features: int) -> int:
    """Weights (out * in) plus one bias per output feature."""
    return out_features * in_features + out_features


@pytest.mark.parametrize("batch_size", [1, 2])
def test_tutorial_cnn_output_shape(batch_size: int) -> None:
    model = TutorialCNN()
    assert model(torch.rand(batch_size, 3, 32, 32)).shape == (batch_size, 10)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_mnist_cnn_output_shape(batch_size: int) -> None:
    model = MnistCNN()
    assert model(torch.rand(batch_size, 1, 28, 28)).shape == (batch_size, 10)


def test_num_classes_sets_the_output_width() -> None:
    assert TutorialCNN(num_classes=4)(torch.rand(2, 3, 32, 32)).shape == (2, 4)
    assert MnistCNN(num_classes=3)(torch.rand(2, 1, 28, 28)).shape == (2, 3)


def test_tutorial_cnn_parameter_count() -> None:
    expected = (
        conv_parameters(3, 18, 3) + linear_parameters(18 * 16 * 16, 64) + linear_parameters(64, 10)
    )
    assert expected == 296_130
    assert count_parameters(TutorialCNN()) == expected


def test_mnist_cnn_parameter_count() -> None:
    expected = (
        conv_parameters(1, 32, 3) + conv_parameters(32, 64, 3) + linear_parameters(7 * 7 * 64, 10)
    )
    assert expected == 50_186
    assert count_parameters(MnistCNN()) == expected


def test_batch_is_not_mixed_up() -> None:
    """Each example's output depends on that example only (flatten keeps the batch axis)."""
    torch.manual_seed(0)
    model = TutorialCNN().eval()
    batch = torch.rand(2, 3, 32, 32)
    together = model(batch)
    alone = torch.cat([model(batch[:1]), model(batch[1:])])
    assert torch.allclose(together, alone, atol=1e-6)


@pytest.mark.parametrize(
    ("model", "shape", "expected", "got"),
    [
        (TutorialCNN(), (2, 3, 64, 64), 4608, 18 * 32 * 32),
        (TutorialCNN(), (1, 3, 28, 28), 4608, 18 * 14 * 14),
        (MnistCNN(), (2, 1, 32, 32), 3136, 64 * 8 * 8),
    ],
)
def test_wrong_input_size_gives_a_clear_error(
    model: torch.nn.Module, shape: tuple[int, ...], expected: int, got: int
) -> None:
    with pytest.raises(ValueError) as error:
        model(torch.rand(*shape))
    message = str(error.value)
    assert f"expects {expected} features" in message
    assert f"produced {got}" in message
    assert type(model).__name__ in message
    assert "resize the input" in message


@pytest.mark.parametrize("batch_size", [1, 2])
def test_mnist_bn_cnn_output_shape(batch_size: int) -> None:
    model = MnistBNCNN().eval()
    assert model(torch.rand(batch_size, 1, 28, 28)).shape == (batch_size, 10)


def test_mnist_bn_cnn_parameter_count() -> None:
    batch_norm = 2 * (16 + 32 + 64)  # a scale and a shift per channel
    convolutions = 16 * 1 * 9 + 32 * 16 * 9 + 64 * 32 * 9  # bias=False: BatchNorm shifts
    expected = convolutions + batch_norm + linear_parameters(64 * 3 * 3, 10)
    assert expected == 29_178
    assert count_parameters(MnistBNCNN()) == expected


def test_mnist_bn_cnn_rejects_wrong_sizes() -> None:
    with pytest.raises(ValueError, match="MnistBNCNN: the first Linear layer expects 576"):
        MnistBNCNN()(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="channels must be three positive integers"):
        MnistBNCNN(channels=(16, 32))
