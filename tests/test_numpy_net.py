"""The NumPy layers and SimpleConvNet of cnnbook.numpy_net: shapes and backward passes.

Every backward pass is compared with central differences in float64, and the
whole network with PyTorch autograd on the same weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnbook.numpy_net import (
    Adam,
    Affine,
    Convolution,
    Pooling,
    Relu,
    SimpleConvNet,
    SoftmaxWithLoss,
    numerical_gradient,
    relative_error,
)


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _check_layer_input_gradient(layer, x: np.ndarray) -> None:
    """d(sum(out * r))/dx by backward must match central differences."""
    r = _rng().standard_normal(layer.forward(x).shape)

    def f() -> float:
        return float((layer.forward(x) * r).sum())

    layer.forward(x)
    analytic = layer.backward(r)
    numeric = numerical_gradient(f, x)
    assert analytic.shape == x.shape
    assert relative_error(analytic, numeric) < 1e-7


def test_numerical_gradient_of_a_quadratic() -> None:
    x = np.array([[1.0, -2.0], [3.0, 0.5]])
    assert np.allclose(numerical_gradient(lambda: float((x**2).sum()), x), 2 * x)
    assert np.array_equal(x, [[1.0, -2.0], [3.0, 0.5]])  # restored after the check


def test_relative_error() -> None:
    a = np.array([1.0, 2.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(a, -a) == pytest.approx(1.0)


def test_relu_forward_backward() -> None:
    layer = Relu()
    x = np.array([[-1.0, 2.0], [0.5, -3.0]])
    assert np.array_equal(layer.forward(x), [[0.0, 2.0], [0.5, 0.0]])
    assert np.array_equal(layer.backward(np.ones_like(x)), [[0.0, 1.0], [1.0, 0.0]])


def test_affine_gradients() -> None:
    rng = _rng()
    W, b = rng.standard_normal((12, 5)), rng.standard_normal(5)
    layer = Affine(W, b)
    x = rng.standard_normal((3, 3, 2, 2))  # flattened to 12 features
    assert layer.forward(x).shape == (3, 5)
    _check_layer_input_gradient(layer, x)
    r = rng.standard_normal((3, 5))

    def f() -> float:
        return float((layer.forward(x) * r).sum())

    layer.forward(x)
    layer.backward(r)
    assert relative_error(layer.dW, numerical_gradient(f, W)) < 1e-7
    assert relative_error(layer.db, numerical_gradient(f, b)) < 1e-7


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_convolution_matches_torch_and_numerical_gradients(stride: int, padding: int) -> None:
    rng = _rng()
    W, b = rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)
    layer = Convolution(W, b, stride=stride, padding=padding)
    x = rng.standard_normal((2, 2, 7, 7))
    out = layer.forward(x)
    expected = F.conv2d(
        torch.from_numpy(x), torch.from_numpy(W), torch.from_numpy(b), stride, padding
    )
    assert out.shape == tuple(expected.shape)
    assert np.allclose(out, expected.numpy())
    _check_layer_input_gradient(layer, x)
    r = rng.standard_normal(out.shape)

    def f() -> float:
        return float((layer.forward(x) * r).sum())

    layer.forward(x)
    layer.backward(r)
    assert relative_error(layer.dW, numerical_gradient(f, W)) < 1e-7
    assert relative_error(layer.db, numerical_gradient(f, b)) < 1e-7


@pytest.mark.parametrize("kernel_size,stride", [(2, 2), (3, 2)])
def test_pooling_matches_torch_and_numerical_gradients(kernel_size: int, stride: int) -> None:
    layer = Pooling(kernel_size, stride)
    x = _rng().standard_normal((2, 3, 7, 7))  # distinct values: no ties in any window
    out = layer.forward(x)
    expected = F.max_pool2d(torch.from_numpy(x), kernel_size, stride)
    assert np.array_equal(out, expected.numpy())
    _check_layer_input_gradient(layer, x)


def test_softmax_with_loss() -> None:
    rng = _rng()
    x, t = rng.standard_normal((4, 5)), np.array([0, 3, 1, 4])
    layer = SoftmaxWithLoss()
    loss = layer.forward(x, t)
    assert loss == pytest.approx(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)).item())
    assert (
        relative_error(layer.backward(), numerical_gradient(lambda: layer.forward(x, t), x)) < 1e-7
    )
    one_hot = np.eye(5)[t]
    assert layer.forward(x, one_hot) == pytest.approx(loss)


def _small_net(**kwargs) -> SimpleConvNet:
    return SimpleConvNet(
        input_dim=(1, 8, 8), filter_num=3, filter_size=3, hidden_size=6, output_size=4,
        weight_init_std=0.3, dtype=np.float64, **kwargs,
    )  # fmt: skip


def test_simple_conv_net_shapes_and_defaults() -> None:
    net = SimpleConvNet()
    shapes = {key: value.shape for key, value in net.params.items()}
    assert shapes == {
        "W1": (30, 1, 5, 5), "b1": (30,), "W2": (30 * 12 * 12, 100), "b2": (100,),
        "W3": (100, 10), "b3": (10,),
    }  # fmt: skip
    assert abs(float(net.params["W1"].std()) - 0.01) < 0.002
    x = _rng().random((5, 1, 28, 28)).astype(np.float32)
    assert net.predict(x).shape == (5, 10)
    assert net.loss(x, np.arange(5)) == pytest.approx(np.log(10), abs=0.01)  # tiny weights


def test_simple_conv_net_gradient_matches_numerical() -> None:
    net = _small_net()
    rng = _rng()
    x, t = rng.standard_normal((2, 1, 8, 8)), np.array([1, 3])
    analytic = net.gradient(x, t)
    numeric = net.numerical_gradient(x, t)
    for key in net.params:
        assert relative_error(analytic[key], numeric[key]) < 1e-6, key


def test_simple_conv_net_gradient_matches_autograd() -> None:
    net = _small_net()
    rng = _rng()
    x, t = rng.standard_normal((3, 1, 8, 8)), np.array([0, 1, 2])
    grads = net.gradient(x, t)
    p = {key: torch.tensor(value, requires_grad=True) for key, value in net.params.items()}
    h = F.max_pool2d(F.relu(F.conv2d(torch.from_numpy(x), p["W1"], p["b1"])), 2, 2)
    h = F.relu(h.flatten(1) @ p["W2"] + p["b2"])
    loss = F.cross_entropy(h @ p["W3"] + p["b3"], torch.from_numpy(t))
    loss.backward()
    assert loss.item() == pytest.approx(net.loss(x, t))
    for key in net.params:
        assert np.allclose(grads[key], p[key].grad.numpy(), atol=1e-10), key


def test_he_initialisation_scales_with_fan_in() -> None:
    net = SimpleConvNet(weight_init_std="he", seed=1)
    assert abs(float(net.params["W1"].std()) - np.sqrt(2 / 25)) < 0.05
    assert abs(float(net.params["W2"].std()) - np.sqrt(2 / 4320)) < 0.002


def test_adam_decreases_the_loss_and_updates_in_place() -> None:
    rng = _rng()
    x, t = rng.standard_normal((8, 1, 8, 8)), rng.integers(0, 4, 8)
    for optimizer in (Adam(lr=0.01),):
        net = _small_net()
        w1 = net.params["W1"]
        before = net.loss(x, t)
        for _ in range(20):
            optimizer.update(net.params, net.gradient(x, t))
        assert net.params["W1"] is w1 and net.layers["Conv1"].W is w1
        assert net.loss(x, t) < before


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="weight_init_std"):
        SimpleConvNet(weight_init_std="xavier")
    with pytest.raises(ValueError, match="input_dim"):
        SimpleConvNet(input_dim=(28, 28))
    with pytest.raises(ValueError, match="Convolution expects"):
        Convolution(np.zeros((2, 3, 3, 3)), np.zeros(2)).forward(np.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match="Affine expects"):
        Affine(np.zeros((4, 2)), np.zeros(2)).forward(np.zeros((1, 5)))
    with pytest.raises(ValueError, match="lr"):
        Adam(lr=0)
