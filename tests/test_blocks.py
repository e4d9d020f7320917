"""The modern CNN blocks of cnnbook.blocks: shapes, parameter counts, and agreement with PyTorch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbook.blocks import (
    BatchNorm2dScratch,
    DeepConvNet,
    ResidualBlock,
    SmallNiN,
    SmallResNet,
    SmallVGG,
    gap_classifier,
    he_init_,
    layer_gradient_norms,
    nin_block,
    receptive_field,
    vgg_block,
)
from cnnbook.train import count_parameters


def test_receptive_field_of_stacks() -> None:
    assert receptive_field([]) == 1
    assert receptive_field([(3, 1)]) == 3
    assert receptive_field([(3, 1), (3, 1)]) == 5 == receptive_field([(5, 1)])
    assert receptive_field([(3, 1)] * 3) == 7
    # LeNet-style: conv 5, pool 2/2, conv 5 -> 5 + 1 + 4 * 2 = 14
    assert receptive_field([(5, 1), (2, 2), (5, 1)]) == 14


def test_receptive_field_rejects_bad_layers() -> None:
    with pytest.raises(ValueError, match="kernel_size, stride"):
        receptive_field([(3,)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="stride"):
        receptive_field([(3, 0)])
    with pytest.raises(TypeError, match="kernel_size"):
        receptive_field([(3.0, 1)])  # type: ignore[list-item]


def test_receptive_field_matches_the_gradient_of_a_real_stack() -> None:
    # Average pooling, not max: a max pool passes the gradient to one input of each window
    # only, so which pixels get a gradient would depend on the random input.
    torch.manual_seed(0)
    stack = nn.Sequential(
        nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3), nn.AvgPool2d(2), nn.Conv2d(1, 1, 3)
    )
    x = torch.randn(1, 1, 20, 20, requires_grad=True)
    stack(x)[0, 0, 2, 2].backward()
    rows = (x.grad[0, 0].abs().sum(dim=1) > 0).nonzero().flatten()
    assert int(rows.max() - rows.min() + 1) == receptive_field([(3, 1), (3, 1), (2, 2), (3, 1)])


def test_vgg_block_shapes_and_parameters() -> None:
    block = vgg_block(3, 8, num_convs=2)
    assert block(torch.zeros(2, 3, 16, 12)).shape == (2, 8, 8, 6)
    assert count_parameters(block) == 8 * (3 * 9 + 1) + 8 * (8 * 9 + 1)
    with_bn = vgg_block(3, 8, num_convs=2, batch_norm=True)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in with_bn) == 2
    assert all(m.bias is None for m in with_bn if isinstance(m, nn.Conv2d))
    with pytest.raises(ValueError, match="num_convs"):
        vgg_block(3, 8, num_convs=0)


def test_nin_block_and_gap_classifier() -> None:
    block = nin_block(3, 16, kernel_size=5, padding=2)
    assert block(torch.zeros(1, 3, 9, 7)).shape == (1, 16, 9, 7)
    assert [m.kernel_size for m in block if isinstance(m, nn.Conv2d)] == [(5, 5), (1, 1), (1, 1)]
    head = gap_classifier(64, 10)
    assert count_parameters(head) == 65 * 10
    x = torch.randn(2, 64, 5, 3)
    expected = head[2](x.mean(dim=(2, 3)))
    assert torch.allclose(head(x), expected, atol=1e-6)


@pytest.mark.parametrize("size", [(28, 28), (32, 32), (20, 44)])
def test_small_nin_takes_any_image_size(size: tuple[int, int]) -> None:
    model = SmallNiN()
    assert model(torch.zeros(2, 1, *size)).shape == (2, 10)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())


def test_small_nin_rejects_tiny_or_wrong_images() -> None:
    with pytest.raises(ValueError, match="4x4"):
        SmallNiN()(torch.zeros(1, 1, 3, 8))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        SmallNiN()(torch.zeros(1, 3, 28, 28))


def test_small_vgg_with_and_without_batch_norm() -> None:
    plain, normed = SmallVGG(), SmallVGG(batch_norm=True)
    assert plain(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert normed(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in normed.modules()) == 4
    with pytest.raises(ValueError, match="channels"):
        SmallVGG(channels=())
    with pytest.raises(ValueError, match="divisible by 4"):
        SmallVGG(image_size=30)
    with pytest.raises(ValueError, match="image_size"):
        plain(torch.zeros(1, 1, 32, 32))
    assert SmallVGG(image_size=32)(torch.zeros(1, 1, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_batch_norm_scratch_equals_pytorch_in_both_modes(momentum: float) -> None:
    torch.manual_seed(0)
    ours, reference = BatchNorm2dScratch(4, momentum=momentum), nn.BatchNorm2d(4, momentum=momentum)
    with torch.no_grad():
        for layer in (ours, reference):
            layer.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
            layer.bias.copy_(torch.tensor([0.0, 1.0, -1.0, 3.0]))
    for _ in range(3):
        x = torch.randn(8, 4, 5, 5) * 3 + 2
        assert torch.allclose(ours(x), reference(x), atol=1e-5)
    assert torch.allclose(ours.running_mean, reference.running_mean, atol=1e-6)
    assert torch.allclose(ours.running_var, reference.running_var, atol=1e-5)
    ours.eval()
    reference.eval()
    x = torch.randn(2, 4, 5, 5)
    assert torch.allclose(ours(x), reference(x), atol=1e-5)


def test_batch_norm_scratch_gradients_equal_pytorch() -> None:
    torch.manual_seed(0)
    ours, reference = BatchNorm2dScratch(3), nn.BatchNorm2d(3)
    x = torch.randn(4, 3, 6, 6)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    weights = torch.randn(4, 3, 6, 6)
    (ours(x1) * weights).sum().backward()
    (reference(x2) * weights).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5)
    assert torch.allclose(ours.weight.grad, reference.weight.grad, atol=1e-5)


def test_batch_norm_scratch_training_output_is_normalised() -> None:
    x = torch.randn(16, 2, 4, 4) * 5 + 3
    out = BatchNorm2dScratch(2)(x)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(out.var(dim=(0, 2, 3), unbiased=False), torch.ones(2), atol=1e-3)


def test_batch_norm_scratch_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        BatchNorm2dScratch(3)(torch.zeros(2, 4, 5, 5))
    with pytest.raises(ValueError, match="more than one value"):
        BatchNorm2dScratch(3)(torch.zeros(1, 3, 1, 1))
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm2dScratch(3, momentum=0.0)
    with pytest.raises(ValueError, match="eps"):
        BatchNorm2dScratch(3, eps=0.0)


def test_residual_block_identity_and_projection() -> None:
    same = ResidualBlock(8, 8)
    assert isinstance(same.shortcut, nn.Identity)
    assert same(torch.zeros(2, 8, 10, 10)).shape == (2, 8, 10, 10)
    down = ResidualBlock(8, 16, stride=2)
    projection = [m for m in down.shortcut.modules() if isinstance(m, nn.Conv2d)]
    assert len(projection) == 1 and projection[0].kernel_size == (1, 1)
    assert projection[0].stride == (2, 2)
    assert down(torch.zeros(2, 8, 10, 10)).shape == (2, 16, 5, 5)


def test_residual_block_adds_its_input() -> None:
    block = ResidualBlock(4, 4, batch_norm=False)
    with torch.no_grad():
        for module in block.body.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.zero_()
                module.bias.zero_()
    x = torch.randn(2, 4, 6, 6)
    assert torch.equal(block(x), torch.relu(x))  # F(x) = 0: the block passes x on
    plain = ResidualBlock(4, 4, batch_norm=False, residual=False)
    plain.load_state_dict(block.state_dict())
    assert torch.equal(plain(x), torch.zeros_like(x))


def test_deep_conv_net_plain_and_residual_have_the_same_layers() -> None:
    plain, residual = DeepConvNet(num_blocks=4, residual=False), DeepConvNet(num_blocks=4)
    assert plain.depth == residual.depth == 2 * 4 + 2
    assert count_parameters(plain) == count_parameters(residual)
    residual.load_state_dict(plain.state_dict())
    assert residual(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        plain(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match="image_size"):
        plain(torch.zeros(2, 1, 32, 32))
    assert DeepConvNet(num_blocks=1, image_size=32)(torch.zeros(1, 1, 32, 32)).shape == (1, 10)
    assert (
        DeepConvNet(num_blocks=1, image_size=9, stem_stride=3).classifier[1].in_features == 16 * 9
    )


def test_small_resnet_shapes_and_depth() -> None:
    model = SmallResNet()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 7  # stem + 3 stages x 2: with the Linear layer, a ResNet-8
    assert SmallResNet(blocks_per_stage=3)(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    stages = [stage(torch.zeros(1, 16, 32, 32)) for stage in model.stages[:1]]
    assert stages[0].shape == (1, 16, 32, 32)
    with pytest.raises(ValueError, match="widths"):
        SmallResNet(widths=())


def test_layer_gradient_norms_lists_every_weight_layer_and_leaves_the_model_alone() -> None:
    torch.manual_seed(0)
    model = DeepConvNet(num_blocks=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    norms = layer_gradient_norms(model, torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]))
    assert list(norms) == [
        "stem.0",
        "blocks.0.body.0",
        "blocks.0.body.3",
        "blocks.1.body.0",
        "blocks.1.body.3",
        "classifier.1",
    ]
    assert all(value > 0 for value in norms.values())
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_layer_gradient_norms_rejects_mismatched_batches() -> None:
    with pytest.raises(ValueError, match="targets"):
        layer_gradient_norms(DeepConvNet(num_blocks=1), torch.zeros(2, 1, 8, 8), torch.zeros(3))
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        layer_gradient_norms(nn.Sequential(nn.Flatten()), torch.zeros(2, 4), torch.zeros(2).long())


def test_plain_deep_net_gradients_vanish_towards_the_input() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    plain = list(layer_gradient_norms(DeepConvNet(residual=False), x, y).values())
    torch.manual_seed(0)
    residual = list(layer_gradient_norms(DeepConvNet(), x, y).values())
    assert plain[0] < 1e-3 * plain[-2]
    assert residual[0] > 100 * plain[0]


def test_he_init_scales_weights_for_relu_and_zeroes_biases() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64), nn.Linear(512, 100))
    model[1].weight.data.fill_(0.5)
    assert he_init_(model) is model
    for layer, fan_in in ((model[0], 32 * 9), (model[2], 512)):
        std = layer.weight.std().item()
        assert abs(std - (2 / fan_in) ** 0.5) < 0.05 * (2 / fan_in) ** 0.5
        assert not layer.bias.any()
    assert torch.all(model[1].weight == 0.5)  # BatchNorm untouched
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        he_init_(nn.Sequential(nn.ReLU()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_he_init_or_batch_norm_keeps_the_plain_deep_net_gradient_alive(seed: int) -> None:
    # Ratio of the last convolution's gradient norm to the first's, at initialisation:
    # about 1e5-1e7 with PyTorch's default initialisation, a few units with He's.
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))

    def ratio(model: nn.Module) -> float:
        norms = list(layer_gradient_norms(model, x, y).values())
        return norms[-2] / norms[0]

    torch.manual_seed(seed)
    default = ratio(DeepConvNet(residual=False))
    torch.manual_seed(seed)
    he = ratio(he_init_(DeepConvNet(residual=False)))
    torch.manual_seed(seed)
    batch_norm = ratio(DeepConvNet(residual=False, batch_norm=True))
    assert default > 1e4
    assert he < 100 and batch_norm < 100
