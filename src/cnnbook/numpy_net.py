"""A convolutional network in plain NumPy: layers with ``forward`` and ``backward``.

In the style of "Deep Learning from Scratch": every layer keeps what its
forward pass needs and turns the gradient of the loss with respect to its
output (``dout``) into the gradient with respect to its input, storing the
gradients of its own parameters (``dW``, ``db``) on the way. ``Convolution``
and ``Pooling`` reuse :func:`cnnbook.conv.im2col` and :func:`cnnbook.conv.col2im`.
:class:`SimpleConvNet` chains them; :func:`numerical_gradient` checks them;
:class:`Adam` updates the parameters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from .conv import col2im, conv_output_size, im2col

Params = dict[str, np.ndarray]


class Relu:
    """``max(0, x)``; the backward pass lets the gradient through where the input was positive.

    Introduced in chapter 08.
    """

    def __init__(self) -> None:
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.mask


class Affine:
    """A fully connected layer ``x @ W + b``; inputs of any shape are flattened to (N, -1).

    ``W`` has shape (in_features, out_features), the transpose of ``nn.Linear.weight``.
    Backward: ``dx = dout @ W.T`` (reshaped like the input), ``dW = x.T @ dout``,
    ``db = dout.sum(axis=0)``.

    Introduced in chapter 08.
    """

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        if W.ndim != 2 or b.shape != (W.shape[1],):
            raise ValueError(
                f"Affine needs W of shape (in, out) and b of shape (out,), got {W.shape} and {b.shape}."
            )
        self.W, self.b = W, b
        self.x: np.ndarray | None = None
        self.original_shape: tuple[int, ...] = ()
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.original_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        if self.x.shape[1] != self.W.shape[0]:
            raise ValueError(
                f"Affine expects {self.W.shape[0]} features per example, got {self.x.shape[1]} "
                f"(input shape {x.shape})."
            )
        return self.x @ self.W + self.b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return (dout @ self.W.T).reshape(self.original_shape)


class Convolution:
    """2-D convolution (cross-correlation) as one matrix product over :func:`im2col` rows.

    ``W`` has shape (out_channels, in_channels, kernel_h, kernel_w) and ``b`` shape
    (out_channels,). Forward: ``out = im2col(x) @ W.reshape(F, -1).T + b``.
    Backward: ``db`` sums ``dout`` over images and positions, ``dW = col.T @ dout``,
    and the input gradient ``dcol = dout @ W_col.T`` is folded back by
    :func:`col2im`, which adds the contributions of overlapping patches.

    Introduced in chapter 08.
    """

    def __init__(self, W: np.ndarray, b: np.ndarray, stride: int = 1, padding: int = 0) -> None:
        if W.ndim != 4 or b.shape != (W.shape[0],):
            raise ValueError(
                "Convolution needs W of shape (out_channels, in_channels, kh, kw) and b of shape "
                f"(out_channels,), got {W.shape} and {b.shape}."
            )
        self.W, self.b, self.stride, self.padding = W, b, stride, padding
        self.x_shape: tuple[int, ...] = ()
        self.col: np.ndarray | None = None
        self.col_W: np.ndarray | None = None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        filters, channels, kh, kw = self.W.shape
        if x.ndim != 4 or x.shape[1] != channels:
            raise ValueError(
                f"Convolution expects input of shape (N, {channels}, H, W), got {x.shape}."
            )
        n, _, h, w = x.shape
        out_h = conv_output_size(h, kh, self.stride, self.padding)
        out_w = conv_output_size(w, kw, self.stride, self.padding)
        self.x_shape = x.shape
        self.col = im2col(x, kh, kw, self.stride, self.padding)  # (N*out_h*out_w, C*kh*kw)
        self.col_W = self.W.reshape(filters, -1).T  # (C*kh*kw, F)
        out = self.col @ self.col_W + self.b
        return out.reshape(n, out_h, out_w, filters).transpose(0, 3, 1, 2)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        filters, _, kh, kw = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, filters)  # one row per output position
        self.db = dout.sum(axis=0)
        self.dW = (self.col.T @ dout).T.reshape(self.W.shape)
        dcol = dout @ self.col_W.T
        return col2im(dcol, self.x_shape, kh, kw, self.stride, self.padding)


class Pooling:
    """Max pooling; the backward pass routes each gradient to the position of its window's maximum.

    Windows of ``kernel_size`` x ``kernel_size`` move by ``stride`` (default:
    ``kernel_size``). Forward keeps the ``argmax`` of every window; backward puts
    ``dout`` there, zeros elsewhere, and :func:`col2im` folds the windows back.

    Introduced in chapter 08.
    """

    def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0) -> None:
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.x_shape: tuple[int, ...] = ()
        self.arg_max: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4:
            raise ValueError(f"Pooling expects input of shape (N, C, H, W), got {x.shape}.")
        n, c, h, w = x.shape
        k = self.kernel_size
        out_h = conv_output_size(h, k, self.stride, self.padding)
        out_w = conv_output_size(w, k, self.stride, self.padding)
        self.x_shape = x.shape
        # Rows of im2col hold (channel, window) values; one row per (image, position, channel).
        col = im2col(x, k, k, self.stride, self.padding).reshape(-1, k * k)
        self.arg_max = col.argmax(axis=1)
        out = col[np.arange(col.shape[0]), self.arg_max]
        return out.reshape(n, out_h, out_w, c).transpose(0, 3, 1, 2)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        n, c, h, w = self.x_shape
        k = self.kernel_size
        dout = dout.transpose(0, 2, 3, 1)  # same order as the rows of col: (n, y, x, channel)
        dmax = np.zeros((dout.size, k * k), dtype=dout.dtype)
        dmax[np.arange(dout.size), self.arg_max] = dout.ravel()
        dcol = dmax.reshape(dout.shape[0] * dout.shape[1] * dout.shape[2], -1)
        return col2im(dcol, self.x_shape, k, k, self.stride, self.padding)


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax of scores (N, C), computed stably by subtracting each row's maximum.

    Introduced in chapter 08.
    """
    shifted = x - x.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def cross_entropy_error(y: np.ndarray, t: np.ndarray) -> float:
    """Mean cross-entropy of probabilities ``y`` (N, C) and labels ``t`` (N,) or one-hot (N, C).

    Introduced in chapter 08.
    """
    if t.ndim == y.ndim:
        t = t.argmax(axis=-1)
    n = y.shape[0]
    return float(-np.log(y[np.arange(n), t] + 1e-12).mean())


class SoftmaxWithLoss:
    """Softmax followed by the mean cross-entropy; its backward pass is ``(y - one_hot(t)) / N``.

    Introduced in chapter 08.
    """

    def __init__(self) -> None:
        self.y: np.ndarray | None = None
        self.t: np.ndarray | None = None
        self.loss: float | None = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        self.t = t.argmax(axis=-1) if t.ndim == x.ndim else t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout: float = 1.0) -> np.ndarray:
        n = self.y.shape[0]
        dx = self.y.copy()
        dx[np.arange(n), self.t] -= 1
        return dx * (dout / n)


class SimpleConvNet:
    """Conv → ReLU → MaxPool(2) → Affine → ReLU → Affine → softmax with cross-entropy.

    The network of "Deep Learning from Scratch", chapter 7. Defaults: 30 filters
    of 5x5 (stride 1, no padding), 2x2 max pooling with stride 2, a hidden layer
    of 100 units and 10 classes. ``weight_init_std`` is the standard deviation of
    the Gaussian initial weights (0.01 as in the book) or ``"he"`` for He
    initialisation, ``sqrt(2 / fan_in)`` per layer. Biases start at zero.
    ``params`` holds ``W1, b1`` (convolution), ``W2, b2`` and ``W3, b3`` (affine).

    Introduced in chapter 08.
    """

    def __init__(
        self,
        input_dim: tuple[int, int, int] = (1, 28, 28),
        filter_num: int = 30,
        filter_size: int = 5,
        stride: int = 1,
        padding: int = 0,
        hidden_size: int = 100,
        output_size: int = 10,
        weight_init_std: float | str = 0.01,
        seed: int | None = 0,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        if len(input_dim) != 3:
            raise ValueError(f"input_dim must be (channels, height, width), got {input_dim!r}.")
        if isinstance(weight_init_std, str) and weight_init_std != "he":
            raise ValueError(f"weight_init_std must be a number or 'he', got {weight_init_std!r}.")
        channels, height, width = input_dim
        conv_h = conv_output_size(height, filter_size, stride, padding)
        conv_w = conv_output_size(width, filter_size, stride, padding)
        pool_out = filter_num * conv_output_size(conv_h, 2, 2) * conv_output_size(conv_w, 2, 2)
        rng = np.random.default_rng(seed)

        def init(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
            std = np.sqrt(2.0 / fan_in) if weight_init_std == "he" else float(weight_init_std)
            return (std * rng.standard_normal(shape)).astype(dtype)

        self.params: Params = {
            "W1": init((filter_num, channels, filter_size, filter_size), channels * filter_size**2),
            "b1": np.zeros(filter_num, dtype=dtype),
            "W2": init((pool_out, hidden_size), pool_out),
            "b2": np.zeros(hidden_size, dtype=dtype),
            "W3": init((hidden_size, output_size), hidden_size),
            "b3": np.zeros(output_size, dtype=dtype),
        }
        self.layers: OrderedDict[str, object] = OrderedDict()
        self.layers["Conv1"] = Convolution(self.params["W1"], self.params["b1"], stride, padding)
        self.layers["Relu1"] = Relu()
        self.layers["Pool1"] = Pooling(kernel_size=2, stride=2)
        self.layers["Affine1"] = Affine(self.params["W2"], self.params["b2"])
        self.layers["Relu2"] = Relu()
        self.layers["Affine2"] = Affine(self.params["W3"], self.params["b3"])
        self.last_layer = SoftmaxWithLoss()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class scores (logits) of shape (N, output_size) for images ``x`` (N, C, H, W)."""
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x: np.ndarray, t: np.ndarray) -> float:
        """Mean cross-entropy of the predictions for ``x`` against labels ``t``."""
        return self.last_layer.forward(self.predict(x), t)

    def accuracy(self, x: np.ndarray, t: np.ndarray, batch_size: int = 1000) -> float:
        """Fraction of ``x`` classified as ``t``, computed ``batch_size`` images at a time."""
        if t.ndim != 1:
            t = t.argmax(axis=1)
        correct = 0
        for start in range(0, x.shape[0], batch_size):
            scores = self.predict(x[start : start + batch_size])
            correct += int((scores.argmax(axis=1) == t[start : start + batch_size]).sum())
        return correct / x.shape[0]

    def gradient(self, x: np.ndarray, t: np.ndarray) -> Params:
        """Gradients of the loss for every parameter by backpropagation (same keys as ``params``).

        One forward pass stores what each layer needs; then the gradient flows
        from the loss through the layers in reverse order.
        """
        self.loss(x, t)
        dout = self.last_layer.backward(1.0)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        conv, fc1, fc2 = self.layers["Conv1"], self.layers["Affine1"], self.layers["Affine2"]
        return {
            "W1": conv.dW, "b1": conv.db,
            "W2": fc1.dW, "b2": fc1.db,
            "W3": fc2.dW, "b3": fc2.db,
        }  # fmt: skip

    def numerical_gradient(self, x: np.ndarray, t: np.ndarray, h: float = 1e-5) -> Params:
        """Gradients by central differences, one parameter entry at a time (slow; for checking)."""
        return {
            key: numerical_gradient(lambda: self.loss(x, t), value, h)
            for key, value in self.params.items()
        }


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central-difference gradient of ``f()`` with respect to every entry of the array ``x``.

    ``f`` takes no arguments and reads ``x`` (for example a parameter array of a
    network), which is changed in place by ``±h`` and restored after each
    entry: ``(f(x + h) - f(x - h)) / (2h)``. The error is of order ``h**2``, so use
    float64 arrays for checks; in float32 rounding dominates.

    Introduced in chapter 08.
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        index = it.multi_index
        original = x[index].copy()
        x[index] = original + h
        f_plus = f()
        x[index] = original - h
        f_minus = f()
        x[index] = original
        grad[index] = (f_plus - f_minus) / (2 * h)
        it.iternext()
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / (||a|| + ||b||)``: 0 for equal arrays, about 1 for unrelated ones.

    Introduced in chapter 08.
    """
    denominator = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denominator) if denominator > 0 else 0.0


class Adam:
    """Adam (Kingma and Ba, 2015) written out: running means of gradients and of their squares.

    ``m = beta1*m + (1-beta1)*g``, ``v = beta2*v + (1-beta2)*g**2``, and the step
    ``lr * m_hat / (sqrt(v_hat) + eps)`` with the bias-corrected ``m_hat``,
    ``v_hat``. Parameters are updated in place, so the layers that share the
    arrays see the new values.

    Introduced in chapter 08.
    """

    def __init__(
        self, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}.")
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.step_count = 0
        self.m: Params = {}
        self.v: Params = {}

    def update(self, params: Params, grads: Params) -> None:
        if not self.m:
            self.m = {key: np.zeros_like(value) for key, value in params.items()}
            self.v = {key: np.zeros_like(value) for key, value in params.items()}
        self.step_count += 1
        correction1 = 1 - self.beta1**self.step_count
        correction2 = 1 - self.beta2**self.step_count
        for key in params:
            g = grads[key]
            self.m[key] += (1 - self.beta1) * (g - self.m[key])
            self.v[key] += (1 - self.beta2) * (g * g - self.v[key])
            m_hat = self.m[key] / correction1
            v_hat = self.v[key] / correction2
            params[key] -= (self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(
                params[key].dtype, copy=False
            )
