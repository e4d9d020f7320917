"""The from-scratch convolution and pooling in cnnbook.conv against torch.nn.functional."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnbook.conv import (
    avg_pool2d,
    col2im,
    conv2d_im2col,
    conv2d_naive,
    conv_output_size,
    im2col,
    max_pool2d,
    pool_output_size,
)

SETTINGS = settings(max_examples=60, deadline=None, database=None)


@st.composite
def conv_cases(draw: st.DrawFn) -> dict:
    """A random but valid convolution: shapes, stride, padding, dilation and groups."""
    groups = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    size = tuple(
        draw(st.integers(max(1, dilation[i] * (kernel[i] - 1) + 1 - 2 * padding[i]), 10))
        for i in (0, 1)
    )
    return {
        "n": draw(st.integers(1, 3)),
        "in_channels": groups * draw(st.integers(1, 3)),
        "out_channels": groups * draw(st.integers(1, 3)),
        "size": size,
        "kernel": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
        "bias": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def _conv_arrays(case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["in_channels"], *case["size"])).astype(np.float32)
    shape = (case["out_channels"], case["in_channels"] // case["groups"], *case["kernel"])
    weight = rng.standard_normal(shape).astype(np.float32)
    bias = rng.standard_normal(case["out_channels"]).astype(np.float32) if case["bias"] else None
    return x, weight, bias


@SETTINGS
@given(conv_cases())
def test_conv2d_matches_pytorch(case: dict) -> None:
    x, weight, bias = _conv_arrays(case)
    args = (case["stride"], case["padding"], case["dilation"], case["groups"])
    expected = F.conv2d(
        torch.from_numpy(x),
        torch.from_numpy(weight),
        None if bias is None else torch.from_numpy(bias),
        *args,
    ).numpy()
    for conv in (conv2d_naive, conv2d_im2col):
        out = conv(x, weight, bias, *args)
        assert out.shape == expected.shape, conv.__name__
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5, err_msg=conv.__name__)


@SETTINGS
@given(conv_cases())
def test_output_size_formula_matches_pytorch(case: dict) -> None:
    x, weight, bias = _conv_arrays(case)
    out = F.conv2d(
        torch.from_numpy(x),
        torch.from_numpy(weight),
        None,
        case["stride"],
        case["padding"],
        case["dilation"],
        case["groups"],
    )
    expected = tuple(
        conv_output_size(
            case["size"][i],
            case["kernel"][i],
            case["stride"][i],
            case["padding"][i],
            case["dilation"][i],
        )
        for i in (0, 1)
    )
    assert tuple(out.shape[2:]) == expected


@SETTINGS
@given(conv_cases())
def test_im2col_matches_unfold_and_col2im_matches_fold(case: dict) -> None:
    x, _, _ = _conv_arrays(case)
    kh, kw = case["kernel"]
    args = (case["stride"], case["padding"], case["dilation"])
    col = im2col(x, kh, kw, *args)
    # torch's unfold is (N, C*kh*kw, L); im2col is (N*L, C*kh*kw).
    unfolded = F.unfold(
        torch.from_numpy(x),
        (kh, kw),
        dilation=case["dilation"],
        padding=case["padding"],
        stride=case["stride"],
    ).numpy()
    np.testing.assert_array_equal(col, unfolded.transpose(0, 2, 1).reshape(col.shape))

    rng = np.random.default_rng(case["seed"] + 1)
    upstream = rng.standard_normal(col.shape)
    folded = col2im(upstream, x.shape, kh, kw, *args)
    expected = F.fold(
        torch.from_numpy(upstream.reshape(x.shape[0], -1, col.shape[1]).transpose(0, 2, 1).copy()),
        x.shape[2:],
        (kh, kw),
        dilation=case["dilation"],
        padding=case["padding"],
        stride=case["stride"],
    ).numpy()
    np.testing.assert_allclose(folded, expected, rtol=1e-10, atol=1e-10)
    # col2im is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)>.
    assert np.isclose(np.sum(col * upstream), np.sum(x * folded))


def test_im2col_layout_is_deep_learning_from_scratch() -> None:
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    col = im2col(x, 2, 3, stride=1, padding=0)
    assert col.shape == (2 * 3 * 3, 3 * 2 * 3)
    # Row 0 is the top-left patch of image 0, channel by channel, row by row.
    np.testing.assert_array_equal(col[0], x[0, :, 0:2, 0:3].ravel())
    # The last row is the bottom-right patch of image 1.
    np.testing.assert_array_equal(col[-1], x[1, :, 2:4, 2:5].ravel())
    # Int and pair arguments mean the same thing.
    np.testing.assert_array_equal(
        im2col(x, 3, 3, 2, 1), im2col(x, 3, 3, stride=(2, 2), padding=(1, 1))
    )


def test_col2im_adds_overlaps() -> None:
    shape = (1, 1, 3, 3)
    ones = np.ones((4, 4))  # four 2x2 windows of a 3x3 image, all ones
    counts = col2im(ones, shape, 2, 2)
    np.testing.assert_array_equal(counts[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


@st.composite
def pool_cases(draw: st.DrawFn) -> dict:
    """A random pooling configuration that PyTorch accepts (padding at most half the kernel)."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    size = tuple(
        draw(st.integers(max(1, dilation[i] * (kernel[i] - 1) + 1 - 2 * padding[i]), 10))
        for i in (0, 1)
    )
    return {
        "shape": (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *size),
        "kernel": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "ceil_mode": draw(st.booleans()),
        "count_include_pad": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


@SETTINGS
@given(pool_cases())
def test_max_pool2d_matches_pytorch(case: dict) -> None:
    x = np.random.default_rng(case["seed"]).standard_normal(case["shape"]).astype(np.float32)
    args = (case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"])
    expected, expected_indices = F.max_pool2d(torch.from_numpy(x), *args, return_indices=True)
    out, indices = max_pool2d(x, *args, return_indices=True)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_array_equal(out, expected.numpy())
    # Where a dilated window lies wholly in the padding, PyTorch's index is meaningless.
    real = np.isfinite(out)
    np.testing.assert_array_equal(indices[real], expected_indices.numpy()[real])
    assert out.shape[2:] == tuple(
        pool_output_size(
            case["shape"][2 + i],
            case["kernel"][i],
            None if case["stride"] is None else case["stride"][i],
            case["padding"][i],
            case["dilation"][i],
            case["ceil_mode"],
        )
        for i in (0, 1)
    )


@SETTINGS
@given(pool_cases())
def test_avg_pool2d_matches_pytorch(case: dict) -> None:
    x = np.random.default_rng(case["seed"]).standard_normal(case["shape"]).astype(np.float32)
    args = (case["kernel"], case["stride"], case["padding"], case["ceil_mode"])
    try:
        expected = F.avg_pool2d(torch.from_numpy(x), *args, case["count_include_pad"]).numpy()
    except RuntimeError:
        # Without dilation the strategy's size may be too small; our code must refuse too.
        with pytest.raises(ValueError):
            avg_pool2d(x, *args, count_include_pad=case["count_include_pad"])
        return
    out = avg_pool2d(x, *args, count_include_pad=case["count_include_pad"])
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_pool_stride_defaults_to_kernel_size() -> None:
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(max_pool2d(x, 2)[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(avg_pool2d(x, 2)[0, 0], [[2.5, 4.5], [10.5, 12.5]])


def test_worked_example_is_eight() -> None:
    patch = np.array([[1, 2, 3], [0, 1, 5], [1, 0, 2]], dtype=np.float32).reshape(1, 1, 3, 3)
    kernel = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=np.float32).reshape(1, 1, 3, 3)
    assert conv2d_naive(patch, kernel).item() == 8
    assert conv2d_im2col(patch, kernel).item() == 8


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: conv_output_size(5, 7), "kernel_size=7"),
        (lambda: conv_output_size(5, 3, stride=0), "stride must be at least 1"),
        (lambda: conv_output_size(5, 3, padding=-1), "padding must be at least 0"),
        (lambda: conv_output_size(5, 3, dilation=0), "dilation must be at least 1"),
        (lambda: conv_output_size(5, 3, dilation=3), "more than the padded input"),
        (lambda: pool_output_size(5, 2, padding=2), "at most half of kernel_size"),
        (lambda: im2col(np.zeros((1, 1, 4, 4)), 5, 5), "kernel_size=5"),
        (lambda: im2col(np.zeros((1, 1, 4, 4)), 2, 2, stride=0), "stride must be at least 1"),
        (lambda: im2col(np.zeros((1, 1, 4, 4)), 2, 2, stride=(1, -1)), "stride must be at least 1"),
        (lambda: im2col(np.zeros((1, 4, 4)), 2, 2), "input_data must have 4 dimensions"),
        (lambda: im2col(np.zeros((1, 1, 4, 4)), 2, 2, stride=1.5), "stride must be an int"),
        (lambda: col2im(np.zeros((3, 4)), (1, 1, 3, 3), 2, 2), "col must have shape (4, 4)"),
        (
            lambda: conv2d_naive(np.zeros((1, 3, 5, 5)), np.zeros((2, 2, 3, 3))),
            "channels of input and weight must match",
        ),
        (
            lambda: conv2d_im2col(np.zeros((1, 3, 5, 5)), np.zeros((2, 2, 3, 3))),
            "channels of input and weight must match",
        ),
        (
            lambda: conv2d_im2col(np.zeros((1, 4, 5, 5)), np.zeros((3, 2, 3, 3)), groups=2),
            "groups=2 must divide",
        ),
        (
            lambda: conv2d_im2col(np.zeros((1, 1, 5, 5)), np.zeros((2, 1, 3, 3)), np.zeros(3)),
            "bias must have shape (2,)",
        ),
        (
            lambda: conv2d_naive(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3))),
            "more than the padded input",
        ),
        (lambda: max_pool2d(np.zeros((1, 1, 4, 4)), 2, stride=0), "stride must be at least 1"),
        (lambda: avg_pool2d(np.zeros((1, 1, 4, 4)), 2, padding=2), "at most half of kernel_size"),
        (lambda: avg_pool2d(np.zeros((1, 1, 2, 2)), 3), "kernel_size=3"),
    ],
)
def test_invalid_arguments_raise_clear_value_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
