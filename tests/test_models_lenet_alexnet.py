"""LeNet-5, AlexNet and MiniAlexNet in cnnbook.models: shapes, layers and parameter counts."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from cnnbook.models import AlexNet, LeNet5, MiniAlexNet
from cnnbook.train import count_parameters


@pytest.mark.parametrize("variant", ["classic", "modern"])
def test_lenet5_shapes_and_parameters(variant: str) -> None:
    model = LeNet5(variant)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    # C1 156 + C3 2,416 + C5 48,120 + F6 10,164 + output 850
    assert count_parameters(model) == 61_706
    assert model.features(torch.zeros(1, 1, 28, 28)).shape == (1, 16, 5, 5)


def test_lenet5_variants_differ_in_activation_and_pooling() -> None:
    classic, modern = LeNet5("classic"), LeNet5("modern")
    assert any(isinstance(m, nn.Tanh) for m in classic.modules())
    assert any(isinstance(m, nn.AvgPool2d) for m in classic.modules())
    assert not any(isinstance(m, (nn.Tanh, nn.AvgPool2d)) for m in modern.modules())
    assert any(isinstance(m, nn.MaxPool2d) for m in modern.modules())
    assert any(isinstance(m, nn.Sigmoid) for m in LeNet5("classic", activation="sigmoid").modules())
    with pytest.raises(ValueError, match="variant"):
        LeNet5("lenet4")
    with pytest.raises(ValueError, match="activation"):
        LeNet5(activation="gelu")


def test_lenet5_rejects_wrong_input_size() -> None:
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        LeNet5()(torch.zeros(1, 1, 32, 32))


def test_alexnet_matches_torchvision() -> None:
    ours, reference = AlexNet(), torchvision.models.alexnet(weights=None)
    assert count_parameters(ours) == count_parameters(reference) == 61_100_840
    ours.load_state_dict(reference.state_dict())  # same names and shapes
    ours.eval()
    reference.eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(ours(x), reference(x))


def test_original_alexnet_layers_and_parameters() -> None:
    model = AlexNet(variant="original")
    assert count_parameters(model) == 60_965_224
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.features) == 2
    assert model.features(torch.zeros(1, 3, 224, 224)).shape == (1, 256, 6, 6)
    assert AlexNet(num_classes=10, variant="original").classifier[-1].out_features == 10
    with pytest.raises(ValueError, match="variant"):
        AlexNet(variant="zfnet")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.zeros(1, 1, 224, 224))


def test_mini_alexnet_shapes() -> None:
    model = MiniAlexNet()
    assert model.features(torch.zeros(2, 1, 28, 28)).shape == (2, 32, 2, 2)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    colour = MiniAlexNet(in_channels=3, image_size=32, width=2)
    assert colour.features(torch.zeros(1, 3, 32, 32)).shape == (1, 64, 3, 3)
    assert colour(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    assert any(isinstance(m, nn.LocalResponseNorm) for m in model.modules())
    assert any(isinstance(m, nn.Dropout) for m in model.modules())
    with pytest.raises(ValueError, match=r"\(N, C, 28, 28\)"):
        model(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="width"):
        MiniAlexNet(width=0)
