"""Convolution and pooling from first principles (NumPy), with PyTorch's argument names.

The output-size formulas are the ones in the PyTorch documentation of
``nn.Conv2d`` and ``nn.MaxPool2d``; the from-scratch operations are checked
against ``torch.nn.functional`` in the tests. ``im2col`` and ``col2im`` use the
layout of "Deep Learning from Scratch": one row per output position, one
column per (channel, kernel row, kernel column), so that a convolution is a
single matrix product with the flattened filters.
"""

from __future__ import annotations

import math

import numpy as np

IntOrPair = int | tuple[int, int]


def _check_positive(name: str, value: int, minimum: int = 1) -> None:
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")


def _pair(name: str, value: IntOrPair, minimum: int = 1) -> tuple[int, int]:
    """``value`` as a (height, width) pair of ints, each at least ``minimum``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) in (1, 2)
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        # PyTorch also accepts a one-element tuple, meaning the same value for both sides.
        pair = (int(value[0]), int(value[-1]))
    else:
        raise ValueError(f"{name} must be an int or a pair of ints (height, width), got {value!r}.")
    for v in pair:
        if v < minimum:
            raise ValueError(f"{name} must be at least {minimum}, got {value!r}.")
    return pair


def conv_output_size(
    length: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a convolution along one dimension, as ``nn.Conv2d`` computes it.

    ``L_out = floor((L_in + 2*padding - dilation*(kernel_size - 1) - 1) / stride + 1)``.
    Raises ``ValueError`` naming the argument when the arguments are invalid or
    the dilated kernel does not fit in the padded input.

    Introduced in chapter 02.
    """
    _check_positive("length", length)
    _check_positive("kernel_size", kernel_size)
    _check_positive("stride", stride)
    _check_positive("dilation", dilation)
    _check_positive("padding", padding, minimum=0)
    span = dilation * (kernel_size - 1) + 1
    if span > length + 2 * padding:
        raise ValueError(
            f"kernel_size={kernel_size} with dilation={dilation} spans {span} elements, more than "
            f"the padded input ({length} + 2*{padding} = {length + 2 * padding}); use a smaller "
            "kernel or more padding."
        )
    return math.floor((length + 2 * padding - span) / stride) + 1


def pool_output_size(
    length: int,
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of max or average pooling along one dimension, as PyTorch computes it.

    ``L_out = floor((L_in + 2*padding - dilation*(kernel_size - 1) - 1) / stride) + 1``,
    with the division rounded up instead when ``ceil_mode`` is true; then (as in
    PyTorch) a last window that would start inside the right padding is dropped,
    so every window starts inside the input or the left padding. ``stride``
    defaults to ``kernel_size`` and ``padding`` may be at most half the kernel
    size. Because ``ceil_mode`` keeps a partial last window, it accepts inputs
    shorter than the (dilated) kernel that the floor rule refuses: length 2 with
    kernel 3 and stride 2 gives 1. Raises ``ValueError`` exactly where PyTorch
    refuses, saying what was wrong and how to fix it.

    Introduced in chapter 04.
    """
    stride = kernel_size if stride is None else stride
    _check_positive("length", length)
    _check_positive("kernel_size", kernel_size)
    _check_positive("stride", stride)
    _check_positive("dilation", dilation)
    _check_positive("padding", padding, minimum=0)
    if padding * 2 > kernel_size:
        raise ValueError(
            f"padding={padding} must be at most half of kernel_size={kernel_size}, as in PyTorch; "
            f"use padding <= {kernel_size // 2} or a larger kernel."
        )
    span = dilation * (kernel_size - 1) + 1
    room = length + 2 * padding - span  # how far the window can move inside the padded input
    if ceil_mode:
        room += stride - 1  # round the division up (PyTorch's pooling_output_shape)
    out = room // stride + 1  # floor division, also for negative room
    if ceil_mode and (out - 1) * stride >= length + padding:
        out -= 1  # the last window would start in the right padding
    if out < 1:
        if not ceil_mode:
            raise ValueError(
                f"kernel_size={kernel_size} with dilation={dilation} spans {span} elements, more "
                f"than the padded input ({length} + 2*{padding} = {length + 2 * padding}); use a "
                "smaller kernel or more padding (or ceil_mode=True to keep a partial window)."
            )
        raise ValueError(
            f"kernel_size={kernel_size} with dilation={dilation} spans {span} elements; even "
            f"with ceil_mode=True and stride={stride} a window needs at least "
            f"{span - stride + 1} elements of padded input, but there are only {length} + "
            f"2*{padding} = {length + 2 * padding}; use a smaller kernel or more padding."
        )
    return out


def _check_input(name: str, array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 4:
        raise ValueError(f"{name} must have 4 dimensions (N, C, H, W), got shape {array.shape}.")
    return array


def _batched(name: str, array: np.ndarray) -> tuple[np.ndarray, bool]:
    """``array`` as (N, C, H, W), and whether it came without the batch axis.

    Like ``torch.nn.functional``, the operations accept a single unbatched
    (C, H, W) input and return an unbatched result for it.
    """
    array = np.asarray(array)
    if array.ndim == 3:
        return array[np.newaxis], True
    if array.ndim != 4:
        raise ValueError(
            f"{name} must have 4 dimensions (N, C, H, W), or 3 (C, H, W) for a single "
            f"unbatched input, got shape {array.shape}."
        )
    return array, False


def _check_pool_input(input: np.ndarray) -> tuple[np.ndarray, bool]:
    """The pooling input as (N, C, H, W); like PyTorch, only the batch may be empty."""
    input, unbatched = _batched("input", input)
    if 0 in input.shape[1:]:
        raise ValueError(
            f"input of shape {input.shape} has an empty channel, height or width axis; pooling "
            "needs at least one channel and one pixel (only the batch axis may be 0)."
        )
    return input, unbatched


def _resolve_padding(
    input: np.ndarray,
    padding: IntOrPair | str,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[np.ndarray, tuple[int, int]]:
    """The convolution's padding as a (height, width) pair of ints, accepting PyTorch's strings.

    ``"valid"`` means no padding. ``"same"`` (stride 1 only, as in PyTorch) pads
    ``dilation*(kernel-1)`` in total along each axis so that the output keeps the
    input's size; when that total is odd, PyTorch puts the extra row or column
    at the bottom or right, so it is added to ``input`` here and the returned
    pair pads both sides equally.
    """
    if not isinstance(padding, str):
        return input, _pair("padding", padding, minimum=0)
    if padding == "valid":
        return input, (0, 0)
    if padding != "same":
        raise ValueError(
            f"padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}."
        )
    if stride != (1, 1):
        raise ValueError(
            f"padding='same' is not supported for strided convolutions (stride={stride}); "
            "use stride=1 or give the padding as numbers."
        )
    totals = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
    extra = [(0, 0), (0, 0)] + [(0, t % 2) for t in totals]
    if any(t % 2 for t in totals):
        input = np.pad(input, extra)
    return input, (totals[0] // 2, totals[1] // 2)


def im2col(
    input_data: np.ndarray,
    kernel_h: int,
    kernel_w: int,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    pad_value: float = 0.0,
) -> np.ndarray:
    """Unfold every kernel-sized patch of ``input_data`` into one row of a matrix.

    ``input_data`` has shape (N, C, H, W); the result has shape
    (N*out_h*out_w, C*kernel_h*kernel_w), rows ordered by image, then output row,
    then output column, and columns ordered by channel, kernel row, kernel column
    (the order of ``weight.reshape(out_channels, -1)``). ``stride``, ``padding``
    and ``dilation`` are ints or (height, width) pairs; the padding is filled
    with ``pad_value`` (max pooling pads with ``-inf``). The output size follows
    ``conv_output_size``, which raises ``ValueError`` when the kernel does not fit.

    Introduced in chapter 02.
    """
    input_data = _check_input("input_data", input_data)
    _check_positive("kernel_h", kernel_h)
    _check_positive("kernel_w", kernel_w)
    (sh, sw), (ph, pw) = _pair("stride", stride), _pair("padding", padding, minimum=0)
    dh, dw = _pair("dilation", dilation)
    n, c, h, w = input_data.shape
    out_h = conv_output_size(h, kernel_h, sh, ph, dh)
    out_w = conv_output_size(w, kernel_w, sw, pw, dw)
    img = np.pad(
        input_data, [(0, 0), (0, 0), (ph, ph), (pw, pw)], mode="constant", constant_values=pad_value
    )
    col = np.empty((n, c, kernel_h, kernel_w, out_h, out_w), dtype=img.dtype)
    for y in range(kernel_h):
        y0 = y * dh
        for x in range(kernel_w):
            x0 = x * dw
            col[:, :, y, x, :, :] = img[
                :, :, y0 : y0 + sh * (out_h - 1) + 1 : sh, x0 : x0 + sw * (out_w - 1) + 1 : sw
            ]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * out_h * out_w, c * kernel_h * kernel_w)


def col2im(
    col: np.ndarray,
    input_shape: tuple[int, int, int, int],
    kernel_h: int,
    kernel_w: int,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """Fold the rows of ``col`` back into an (N, C, H, W) array, adding where patches overlap.

    The adjoint of ``im2col`` with the same arguments: each entry of ``col`` is
    added to the input position it was copied from, and values that fell in the
    padding are dropped. This is exactly what backpropagation through
    ``im2col`` needs (the gradient of a pixel is the sum over every patch that
    used it). ``input_shape`` is the shape of the array given to ``im2col``.

    Introduced in chapter 03.
    """
    if len(input_shape) != 4:
        raise ValueError(f"input_shape must be (N, C, H, W), got {input_shape!r}.")
    n, c, h, w = (int(v) for v in input_shape)
    _check_positive("kernel_h", kernel_h)
    _check_positive("kernel_w", kernel_w)
    (sh, sw), (ph, pw) = _pair("stride", stride), _pair("padding", padding, minimum=0)
    dh, dw = _pair("dilation", dilation)
    out_h = conv_output_size(h, kernel_h, sh, ph, dh)
    out_w = conv_output_size(w, kernel_w, sw, pw, dw)
    col = np.asarray(col)
    expected = (n * out_h * out_w, c * kernel_h * kernel_w)
    if col.shape != expected:
        raise ValueError(
            f"col must have shape {expected} for input_shape={tuple(input_shape)} and a "
            f"{kernel_h}x{kernel_w} kernel, got {col.shape}."
        )
    col6 = col.reshape(n, out_h, out_w, c, kernel_h, kernel_w).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=col.dtype)
    for y in range(kernel_h):
        y0 = y * dh
        for x in range(kernel_w):
            x0 = x * dw
            img[:, :, y0 : y0 + sh * (out_h - 1) + 1 : sh, x0 : x0 + sw * (out_w - 1) + 1 : sw] += (
                col6[:, :, y, x, :, :]
            )
    return img[:, :, ph : ph + h, pw : pw + w]


def _check_conv_args(
    input: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
    """Checked (N, C, H, W) input, weight and bias, and whether the input came unbatched."""
    input, unbatched = _batched("input", input)
    weight = _check_input("weight", weight)
    _check_positive("groups", groups)
    in_channels, out_channels = input.shape[1], weight.shape[0]
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups={groups} must divide both in_channels={in_channels} and "
            f"out_channels={out_channels}."
        )
    if weight.shape[1] * groups != in_channels:
        raise ValueError(
            f"weight has {weight.shape[1]} input channels per filter but input has {in_channels} "
            f"channels (groups={groups} needs weight.shape[1] == {in_channels // groups}); "
            "the channels of input and weight must match."
        )
    if bias is not None:
        bias = np.asarray(bias)
        if bias.shape != (out_channels,):
            raise ValueError(
                f"bias must have shape ({out_channels},), one value per filter, got {bias.shape}."
            )
    return input, weight, bias, unbatched


def conv2d_naive(
    input: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> np.ndarray:
    """2-D cross-correlation with explicit loops, as ``torch.nn.functional.conv2d`` computes it.

    ``input`` is (N, C_in, H, W), ``weight`` is (C_out, C_in/groups, kH, kW) and
    ``bias`` is (C_out,) or None. For every image, filter and output position
    the code takes the (dilated) patch under the filter, multiplies elementwise
    and sums: the definition, written as plainly as possible and therefore slow.
    As in PyTorch, ``padding`` may also be ``"same"`` or ``"valid"`` and ``input``
    may be a single unbatched (C_in, H, W) image. Invalid shapes or arguments
    raise ``ValueError`` naming the argument.

    Introduced in chapter 02.
    """
    input, weight, bias, unbatched = _check_conv_args(input, weight, bias, groups)
    c_out, c_per_group, kh, kw = weight.shape
    (sh, sw), (dh, dw) = _pair("stride", stride), _pair("dilation", dilation)
    input, (ph, pw) = _resolve_padding(input, padding, (kh, kw), (sh, sw), (dh, dw))
    n, c_in, h, w = input.shape
    out_h = conv_output_size(h, kh, sh, ph, dh)
    out_w = conv_output_size(w, kw, sw, pw, dw)
    padded = np.pad(input, [(0, 0), (0, 0), (ph, ph), (pw, pw)])
    out_per_group = c_out // groups
    dtype = np.result_type(input, weight)
    output = np.zeros((n, c_out, out_h, out_w), dtype=dtype)
    for i in range(n):
        for f in range(c_out):
            first = (f // out_per_group) * c_per_group
            for y in range(out_h):
                for x in range(out_w):
                    top, left = y * sh, x * sw
                    patch = padded[
                        i,
                        first : first + c_per_group,
                        top : top + dh * (kh - 1) + 1 : dh,
                        left : left + dw * (kw - 1) + 1 : dw,
                    ]
                    output[i, f, y, x] = np.sum(patch * weight[f])
            if bias is not None:
                output[i, f] += bias[f]
    return output[0] if unbatched else output


def conv2d_im2col(
    input: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> np.ndarray:
    """2-D cross-correlation as one matrix product: ``im2col(input) @ weight.reshape(C_out, -1).T``.

    Same arguments and result as ``conv2d_naive`` (and ``torch.nn.functional.conv2d``),
    but every patch is first unfolded into a row by ``im2col`` so that all
    multiply-adds happen in one call to the BLAS matrix multiply. With
    ``groups > 1`` each group of channels gets its own product.

    Introduced in chapter 02.
    """
    input, weight, bias, unbatched = _check_conv_args(input, weight, bias, groups)
    c_out, c_per_group, kh, kw = weight.shape
    (sh, sw), (dh, dw) = _pair("stride", stride), _pair("dilation", dilation)
    input, (ph, pw) = _resolve_padding(input, padding, (kh, kw), (sh, sw), (dh, dw))
    n, c_in, h, w = input.shape
    out_h = conv_output_size(h, kh, sh, ph, dh)
    out_w = conv_output_size(w, kw, sw, pw, dw)
    out_per_group = c_out // groups
    outputs = []
    for g in range(groups):
        col = im2col(
            input[:, g * c_per_group : (g + 1) * c_per_group], kh, kw, stride, (ph, pw), dilation
        )
        filters = weight[g * out_per_group : (g + 1) * out_per_group].reshape(out_per_group, -1)
        outputs.append(col @ filters.T)  # (N*out_h*out_w, out_per_group)
    out = np.concatenate(outputs, axis=1)
    if bias is not None:
        out = out + bias
    out = out.reshape(n, out_h, out_w, c_out).transpose(0, 3, 1, 2)
    return out[0] if unbatched else out


def _pool_windows(
    input: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None,
    padding: IntOrPair,
    dilation: IntOrPair,
    ceil_mode: bool,
    pad_value: float,
) -> tuple[np.ndarray, tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Pooling windows as rows (N*C*out_h*out_w, kH*kW), padded with ``pad_value``.

    Returns the rows, the output size, the kernel size, and the (top/left,
    bottom/right) padding actually applied; with ``ceil_mode`` the bottom and
    right get extra padding so that the last, partial window exists.
    """
    input = _check_input("input", input)
    kh, kw = _pair("kernel_size", kernel_size)
    sh, sw = (kh, kw) if stride is None else _pair("stride", stride)
    ph, pw = _pair("padding", padding, minimum=0)
    dh, dw = _pair("dilation", dilation)
    n, c, h, w = input.shape
    out_h = pool_output_size(h, kh, sh, ph, dh, ceil_mode)
    out_w = pool_output_size(w, kw, sw, pw, dw, ceil_mode)
    # Bottom/right padding so that exactly out_h x out_w windows fit (ceil_mode may need more).
    extra_h = max(0, (out_h - 1) * sh + dh * (kh - 1) + 1 - (h + 2 * ph))
    extra_w = max(0, (out_w - 1) * sw + dw * (kw - 1) + 1 - (w + 2 * pw))
    padded = np.pad(
        input.reshape(n * c, 1, h, w),
        [(0, 0), (0, 0), (ph, ph + extra_h), (pw, pw + extra_w)],
        mode="constant",
        constant_values=pad_value,
    )
    rows = im2col(padded, kh, kw, (sh, sw), 0, (dh, dw))
    # im2col may fit one more window than out_h/out_w when ceil_mode dropped one.
    full_h = conv_output_size(padded.shape[2], kh, sh, 0, dh)
    full_w = conv_output_size(padded.shape[3], kw, sw, 0, dw)
    rows = rows.reshape(n * c, full_h, full_w, kh * kw)[:, :out_h, :out_w]
    return rows.reshape(-1, kh * kw), (out_h, out_w), (kh, kw), (ph, pw), (extra_h, extra_w)


def max_pool2d(
    input: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """2-D max pooling in NumPy, with the arguments and results of ``torch.nn.functional.max_pool2d``.

    Each output is the largest value in its (dilated) window; ``stride``
    defaults to ``kernel_size``; padding counts as ``-inf`` so it never wins;
    ``ceil_mode`` keeps a last, partial window. With ``return_indices`` it also
    returns, like PyTorch, the position of each maximum as a flat index into its
    H*W input plane (the first maximum when there are ties). A dilated window
    that lies wholly in the padding gives ``-inf`` as in PyTorch, with index -1.
    A single unbatched (C, H, W) input gives an unbatched result.

    Introduced in chapter 04.
    """
    input, unbatched = _check_pool_input(input)
    n, c, h, w = input.shape
    values = input.astype(np.result_type(input, np.float32), copy=False)
    rows, (out_h, out_w), *_ = _pool_windows(
        values, kernel_size, stride, padding, dilation, ceil_mode, -np.inf
    )
    best = rows.argmax(axis=1)
    output = rows[np.arange(rows.shape[0]), best].reshape(n, c, out_h, out_w)
    output = output.astype(input.dtype, copy=False)
    if not return_indices:
        return output[0] if unbatched else output
    positions = np.broadcast_to(
        np.arange(h * w, dtype=np.float64).reshape(1, 1, h, w), (n, c, h, w)
    )
    index_rows, *_ = _pool_windows(
        positions, kernel_size, stride, padding, dilation, ceil_mode, -1.0
    )
    indices = (
        index_rows[np.arange(rows.shape[0]), best].astype(np.int64).reshape(n, c, out_h, out_w)
    )
    return (output[0], indices[0]) if unbatched else (output, indices)


def avg_pool2d(
    input: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """2-D average pooling in NumPy, as ``torch.nn.functional.avg_pool2d`` computes it.

    Each output is the mean of its window; ``stride`` defaults to ``kernel_size``.
    The zero padding is part of the divisor when ``count_include_pad`` is True
    and left out otherwise; the extra cells that ``ceil_mode`` adds beyond the
    padding are never counted (PyTorch's rule), so a partial window is averaged
    over the cells it really covers. ``divisor_override`` (a nonzero int) replaces
    every divisor, so ``divisor_override=1`` gives window sums. A single
    unbatched (C, H, W) input gives an unbatched result.

    Introduced in chapter 04.
    """
    input, unbatched = _check_pool_input(input)
    if divisor_override is not None and (
        not isinstance(divisor_override, (int, np.integer))
        or isinstance(divisor_override, bool)
        or divisor_override == 0
    ):
        raise ValueError(
            f"divisor_override must be a nonzero int or None, got {divisor_override!r}; "
            "use None to divide by the window size."
        )
    n, c, h, w = input.shape
    rows, (out_h, out_w), _, (ph, pw), (extra_h, extra_w) = _pool_windows(
        input, kernel_size, stride, padding, 1, ceil_mode, 0.0
    )
    # The divisor of each window: how many of its cells count, from a mask of ones.
    mask = np.zeros((1, 1, h + 2 * ph + extra_h, w + 2 * pw + extra_w))
    if count_include_pad:
        mask[:, :, : h + 2 * ph, : w + 2 * pw] = 1.0
    else:
        mask[:, :, ph : ph + h, pw : pw + w] = 1.0
    kh, kw = _pair("kernel_size", kernel_size)
    stride = (kh, kw) if stride is None else _pair("stride", stride)
    counts = im2col(mask, kh, kw, stride).sum(axis=1)
    full_h, full_w = (conv_output_size(mask.shape[2 + i], (kh, kw)[i], stride[i]) for i in (0, 1))
    divisor = counts.reshape(full_h, full_w)[:out_h, :out_w]
    if divisor_override is not None:
        divisor = np.full_like(divisor, int(divisor_override))
    means = rows.sum(axis=1).reshape(n, c, out_h, out_w) / divisor
    means = means.astype(np.result_type(input, np.float32), copy=False)
    return means[0] if unbatched else means


def conv_transpose_output_size(
    length: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> int:
    """Output length of a transposed convolution along one dimension, as ``nn.ConvTranspose2d``.

    ``L_out = (L_in - 1)*stride - 2*padding + dilation*(kernel_size - 1) + output_padding + 1``:
    every input cell places a copy of the (dilated) kernel ``stride`` cells after the
    previous one, ``padding`` cells are cropped from each end, and ``output_padding``
    cells are added back at the end. The arguments are in the order of
    ``nn.ConvTranspose2d``. Raises ``ValueError`` exactly where PyTorch refuses: a
    non-positive length, kernel, stride or dilation, a negative padding or
    output padding, ``output_padding`` not smaller than the stride or the
    dilation, or an output of zero cells or fewer.

    Introduced in chapter 05.
    """
    _check_positive("length", length)
    _check_positive("kernel_size", kernel_size)
    _check_positive("stride", stride)
    _check_positive("dilation", dilation)
    _check_positive("padding", padding, minimum=0)
    _check_positive("output_padding", output_padding, minimum=0)
    if output_padding >= stride and output_padding >= dilation:
        raise ValueError(
            f"output_padding={output_padding} must be smaller than the stride ({stride}) or "
            f"the dilation ({dilation}), as in PyTorch: up to stride - 1 extra cells pick one "
            f"of the input lengths that a strided convolution maps to the same output, and "
            f"PyTorch also accepts up to dilation - 1; "
            f"use output_padding <= {max(stride, dilation) - 1}."
        )
    out = (length - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1
    if out < 1:
        raise ValueError(
            f"the transposed convolution of length {length} with kernel_size={kernel_size}, "
            f"stride={stride}, dilation={dilation} and output_padding={output_padding} has "
            f"{out + 2 * padding} cells before cropping, too few for padding={padding} on each "
            f"side (the output would have {out}); use less padding."
        )
    return out


def insert_zeros(input: np.ndarray, stride: IntOrPair) -> np.ndarray:
    """``input`` (N, C, H, W) with ``stride - 1`` zeros inserted between neighbouring pixels.

    The result has shape (N, C, (H-1)*stride_h + 1, (W-1)*stride_w + 1), with the
    input's pixels at every ``stride``-th row and column. This is the first step
    of the "equivalent direct convolution" view of a transposed convolution:
    the stride of the transposed convolution becomes gaps in its input.

    Introduced in chapter 05.
    """
    input = _check_input("input", input)
    sh, sw = _pair("stride", stride)
    n, c, h, w = input.shape
    out = np.zeros((n, c, (h - 1) * sh + 1, (w - 1) * sw + 1), dtype=input.dtype)
    out[:, :, ::sh, ::sw] = input
    return out


def _check_transpose_args(
    input: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: IntOrPair,
    padding: IntOrPair,
    output_padding: IntOrPair,
    groups: int,
    dilation: IntOrPair,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool, dict[str, tuple[int, int]]]:
    """Checked input (N, C_in, H, W), weight (C_in, C_out/groups, kH, kW), bias and arguments."""
    input, unbatched = _batched("input", input)
    weight = _check_input("weight", weight)
    _check_positive("groups", groups)
    in_channels = input.shape[1]
    out_channels = weight.shape[1] * groups
    if in_channels % groups:
        raise ValueError(f"groups={groups} must divide in_channels={in_channels}.")
    if weight.shape[0] != in_channels:
        raise ValueError(
            f"weight has shape {weight.shape}, but a transposed convolution's weight is "
            f"(in_channels, out_channels/groups, kH, kW) and input has {in_channels} channels; "
            "weight.shape[0] must equal the input's channels (note the order: it is the "
            "transpose of Conv2d's (out_channels, in_channels/groups, kH, kW))."
        )
    if bias is not None:
        bias = np.asarray(bias)
        if bias.shape != (out_channels,):
            raise ValueError(
                f"bias must have shape ({out_channels},), one value per output channel, "
                f"got {bias.shape}."
            )
    args = {
        "stride": _pair("stride", stride),
        "padding": _pair("padding", padding, minimum=0),
        "output_padding": _pair("output_padding", output_padding, minimum=0),
        "dilation": _pair("dilation", dilation),
    }
    return input, weight, bias, unbatched, args


def conv_transpose2d(
    input: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    groups: int = 1,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """2-D transposed convolution in NumPy, as ``torch.nn.functional.conv_transpose2d``.

    The scatter view, the adjoint of ``conv2d_im2col``: every input pixel
    multiplies the whole kernel and the products are added into the output
    with ``col2im``, ``stride`` cells apart (and spread by ``dilation``); then
    ``padding`` cells are cropped from each side and ``output_padding`` cells
    are kept at the bottom and right. ``weight`` has PyTorch's transposed layout
    (C_in, C_out/groups, kH, kW). Output sizes follow
    ``conv_transpose_output_size``, which raises ``ValueError`` where PyTorch
    refuses. A single unbatched (C_in, H, W) input gives an unbatched result.

    Introduced in chapter 05.
    """
    input, weight, bias, unbatched, args = _check_transpose_args(
        input, weight, bias, stride, padding, output_padding, groups, dilation
    )
    (sh, sw), (ph, pw) = args["stride"], args["padding"]
    (oph, opw), (dh, dw) = args["output_padding"], args["dilation"]
    n, c_in, h, w = input.shape
    _, out_per_group, kh, kw = weight.shape
    out_h = conv_transpose_output_size(h, kh, sh, ph, oph, dh)
    out_w = conv_transpose_output_size(w, kw, sw, pw, opw, dw)
    # The full output before cropping: each input pixel's kernel copy fits entirely.
    full_h, full_w = (h - 1) * sh + dh * (kh - 1) + 1, (w - 1) * sw + dw * (kw - 1) + 1
    in_per_group = c_in // groups
    dtype = np.result_type(input, weight)
    full = np.zeros((n, out_per_group * groups, full_h + oph, full_w + opw), dtype=dtype)
    for g in range(groups):
        rows = input[:, g * in_per_group : (g + 1) * in_per_group].transpose(0, 2, 3, 1)
        rows = rows.reshape(n * h * w, in_per_group)  # one row per input pixel
        kernels = weight[g * in_per_group : (g + 1) * in_per_group].reshape(in_per_group, -1)
        col = rows @ kernels  # each row: that pixel times every kernel, (C_out/g, kH, kW)
        full[:, g * out_per_group : (g + 1) * out_per_group, :full_h, :full_w] = col2im(
            col, (n, out_per_group, full_h, full_w), kh, kw, (sh, sw), 0, (dh, dw)
        )
    out = full[:, :, ph : ph + out_h, pw : pw + out_w]
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out[0] if unbatched else out


def _pad_or_crop(array: np.ndarray, before: int, after: int, axis: int) -> np.ndarray:
    """Pad ``array`` along ``axis`` with zeros (positive amounts) or crop it (negative ones)."""
    if before < 0:
        array = np.take(array, np.arange(-before, array.shape[axis]), axis=axis)
        before = 0
    if after < 0:
        array = np.take(array, np.arange(array.shape[axis] + after), axis=axis)
        after = 0
    widths = [(0, 0)] * array.ndim
    widths[axis] = (before, after)
    return np.pad(array, widths)


def conv_transpose2d_direct(
    input: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    groups: int = 1,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """The same transposed convolution as an ordinary, stride-1 convolution (the direct view).

    Three steps, each visible in the code: insert ``stride - 1`` zeros between the
    input's pixels (``insert_zeros``); pad ``dilation*(k-1) - padding`` zeros on
    the top and left and ``output_padding`` more on the bottom and right (a
    negative amount crops); then convolve with stride 1, the same dilation and
    the kernel flipped in both directions, its input and output channels
    swapped. Same arguments and result as ``conv_transpose2d`` and
    ``torch.nn.functional.conv_transpose2d``.

    Introduced in chapter 05.
    """
    input, weight, bias, unbatched, args = _check_transpose_args(
        input, weight, bias, stride, padding, output_padding, groups, dilation
    )
    (sh, sw), (ph, pw) = args["stride"], args["padding"]
    (oph, opw), (dh, dw) = args["output_padding"], args["dilation"]
    c_in, out_per_group, kh, kw = weight.shape
    n, _, h, w = input.shape
    # Validate the sizes first, so that the error is the transposed convolution's.
    conv_transpose_output_size(h, kh, sh, ph, oph, dh)
    conv_transpose_output_size(w, kw, sw, pw, opw, dw)
    spread = insert_zeros(input, (sh, sw))
    edge_h, edge_w = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    spread = _pad_or_crop(spread, edge_h, edge_h + oph, axis=2)
    spread = _pad_or_crop(spread, edge_w, edge_w + opw, axis=3)
    # (C_in, C_out/g, kH, kW) -> (C_out, C_in/g, kH, kW), flipped in both spatial axes.
    in_per_group = c_in // groups
    flipped = weight.reshape(groups, in_per_group, out_per_group, kh, kw)
    flipped = flipped.transpose(0, 2, 1, 3, 4).reshape(groups * out_per_group, in_per_group, kh, kw)
    flipped = flipped[:, :, ::-1, ::-1]
    out = conv2d_im2col(spread, flipped, bias, 1, 0, (dh, dw), groups)
    return out[0] if unbatched else out


def convolution_matrix(
    input_shape: tuple[int, int, int],
    weight: np.ndarray,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """The convolution ``conv2d(x, weight, stride, padding, dilation)`` as an explicit matrix C.

    ``input_shape`` is (C_in, H, W) and ``weight`` is (C_out, C_in, kH, kW). Row
    ``(f, i, j)`` of C (flattened in that order) computes output pixel (i, j) of
    filter f: it holds the kernel's weights at the columns of the input pixels
    under the kernel, and zeros everywhere else (taps that fall in the zero
    padding are dropped). So ``C @ x.ravel()`` is the convolution of one image,
    and ``C.T @ y.ravel()`` is the transposed convolution of ``y``. The matrix
    has ``C_out*H_out*W_out`` rows and ``C_in*H*W`` columns, mostly zeros: build
    it for small cases only.

    Introduced in chapter 05.
    """
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C_in, H, W), got {input_shape!r}.")
    c_in, h, w = (int(v) for v in input_shape)
    weight = _check_input("weight", weight)
    c_out, c_w, kh, kw = weight.shape
    if c_w != c_in:
        raise ValueError(
            f"weight has {c_w} input channels but input_shape has {c_in}; "
            "weight must be (C_out, C_in, kH, kW)."
        )
    (sh, sw), (ph, pw) = _pair("stride", stride), _pair("padding", padding, minimum=0)
    dh, dw = _pair("dilation", dilation)
    out_h, out_w = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
    matrix = np.zeros((c_out, out_h, out_w, c_in, h, w), dtype=weight.dtype)
    for i in range(out_h):
        for j in range(out_w):
            for a in range(kh):
                for b in range(kw):
                    row, col = i * sh - ph + a * dh, j * sw - pw + b * dw
                    if 0 <= row < h and 0 <= col < w:
                        matrix[:, i, j, :, row, col] = weight[:, :, a, b]
    return matrix.reshape(c_out * out_h * out_w, c_in * h * w)
