"""The from-scratch convolution and pooling in cnnbook.conv against torch.nn.functional."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import event, given, settings
from hypothesis import strategies as st

from cnnbook.conv import (
    avg_pool2d,
    col2im,
    conv2d_im2col,
    conv2d_naive,
    conv_output_size,
    conv_transpose2d,
    conv_transpose2d_direct,
    conv_transpose_output_size,
    convolution_matrix,
    im2col,
    insert_zeros,
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
    """A random pooling configuration, often one where ``ceil_mode`` keeps a partial window.

    Sizes start at 1, so inputs shorter than the (dilated) kernel are common: the
    floor rule refuses them, while with ``ceil_mode`` PyTorch accepts some of them.
    Padding stays within PyTorch's limit of half the kernel.
    """
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    short = st.integers(1, 4)  # around the kernel size, where the two rules differ
    size = (draw(st.one_of(short, st.integers(1, 10))), draw(st.one_of(short, st.integers(1, 10))))
    return {
        "shape": (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *size),
        "kernel": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "ceil_mode": draw(st.booleans()),
        "count_include_pad": draw(st.booleans()),
        "divisor_override": draw(st.one_of(st.none(), st.integers(1, 5))),
        "seed": draw(st.integers(0, 2**16)),
    }


def _small_ceil_mode_case(case: dict) -> bool:
    """Whether ``case`` is one where the floor rule refuses and PyTorch may still accept."""
    kernel, size = case["kernel"], case["shape"][2:]
    return case["ceil_mode"] and any(
        case["dilation"][i] * (kernel[i] - 1) + 1 > size[i] + 2 * case["padding"][i] for i in (0, 1)
    )


def _pool_sizes(case: dict, dilation: tuple[int, int]) -> tuple[int, int]:
    return tuple(
        pool_output_size(
            case["shape"][2 + i],
            case["kernel"][i],
            None if case["stride"] is None else case["stride"][i],
            case["padding"][i],
            dilation[i],
            case["ceil_mode"],
        )
        for i in (0, 1)
    )


@SETTINGS
@given(pool_cases())
def test_max_pool2d_matches_pytorch(case: dict) -> None:
    x = np.random.default_rng(case["seed"]).standard_normal(case["shape"]).astype(np.float32)
    args = (case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"])
    try:
        expected, expected_indices = F.max_pool2d(torch.from_numpy(x), *args, return_indices=True)
    except RuntimeError:
        event("refused by PyTorch")
        with pytest.raises(ValueError):
            max_pool2d(x, *args)
        with pytest.raises(ValueError):
            _pool_sizes(case, case["dilation"])
        return
    if _small_ceil_mode_case(case):
        event("accepted only thanks to ceil_mode")
    out, indices = max_pool2d(x, *args, return_indices=True)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_array_equal(out, expected.numpy())
    # Where a dilated window lies wholly in the padding, PyTorch's index is meaningless.
    real = np.isfinite(out)
    np.testing.assert_array_equal(indices[real], expected_indices.numpy()[real])
    assert out.shape[2:] == _pool_sizes(case, case["dilation"])


@SETTINGS
@given(pool_cases())
def test_avg_pool2d_matches_pytorch(case: dict) -> None:
    x = np.random.default_rng(case["seed"]).standard_normal(case["shape"]).astype(np.float32)
    args = (case["kernel"], case["stride"], case["padding"], case["ceil_mode"])
    options = {
        "count_include_pad": case["count_include_pad"],
        "divisor_override": case["divisor_override"],
    }
    try:
        expected = F.avg_pool2d(torch.from_numpy(x), *args, **options).numpy()
    except RuntimeError:
        event("refused by PyTorch")
        with pytest.raises(ValueError):
            avg_pool2d(x, *args, **options)
        with pytest.raises(ValueError):
            _pool_sizes(case, (1, 1))
        return
    if _small_ceil_mode_case(case):
        event("accepted only thanks to ceil_mode")
    out = avg_pool2d(x, *args, **options)
    assert out.shape == expected.shape
    assert out.shape[2:] == _pool_sizes(case, (1, 1))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_pool_output_size_agrees_with_pytorch_on_every_small_configuration() -> None:
    """Every length 1-7, kernel 1-4, stride 1-3, padding 0-3, dilation 1-2 and ceil_mode.

    Includes padding beyond half the kernel and inputs shorter than the kernel: the
    formula must give PyTorch's size where PyTorch accepts and raise where it refuses.
    """
    accepted_only_with_ceil = 0
    for length, kernel, stride, padding, dilation, ceil_mode in itertools.product(
        range(1, 8), range(1, 5), range(1, 4), range(4), range(1, 3), (False, True)
    ):
        args = ((1, kernel), (1, stride), (0, padding), (1, dilation), ceil_mode)
        try:
            expected = F.max_pool2d(torch.zeros(1, 1, 1, length), *args).shape[-1]
        except RuntimeError:
            with pytest.raises(ValueError):
                pool_output_size(length, kernel, stride, padding, dilation, ceil_mode)
            continue
        assert pool_output_size(length, kernel, stride, padding, dilation, ceil_mode) == expected
        if ceil_mode and dilation * (kernel - 1) + 1 > length + 2 * padding:
            accepted_only_with_ceil += 1
    assert accepted_only_with_ceil > 20  # the cases the convolution rule used to refuse


def test_ceil_mode_accepts_an_input_shorter_than_the_kernel() -> None:
    # Length 2, kernel 3, stride 2: the floor rule has no window, ceil_mode keeps a partial one.
    assert pool_output_size(2, 3, 2, ceil_mode=True) == 1
    x = np.array([[[[1.0, -2.0], [3.0, 4.0]]]], dtype=np.float32)
    t = torch.from_numpy(x)
    np.testing.assert_array_equal(
        max_pool2d(x, 3, 2, ceil_mode=True), F.max_pool2d(t, 3, 2, 0, 1, True)
    )
    for include in (True, False):
        np.testing.assert_allclose(
            avg_pool2d(x, 3, 2, 0, True, include), F.avg_pool2d(t, 3, 2, 0, True, include)
        )
    assert avg_pool2d(x, 3, 2, ceil_mode=True).item() == 1.5  # 6 / the 4 cells it covers
    with pytest.raises(ValueError, match=re.escape("or ceil_mode=True")):
        pool_output_size(2, 3, 2)
    # The last window must start inside the input or the left padding: 1 + 1 padding, kernel 4.
    assert pool_output_size(1, 4, 2, padding=2, ceil_mode=True) == 2
    assert F.max_pool2d(torch.zeros(1, 1, 1, 1), 4, 2, 2, 1, True).shape[-1] == 2
    assert pool_output_size(5, 2, ceil_mode=True) == 3
    assert pool_output_size(4, 2, ceil_mode=True) == 2  # would start in the right padding


def test_pool_accepts_unbatched_empty_batch_and_divisor_override() -> None:
    x = np.random.default_rng(0).standard_normal((3, 5, 5)).astype(np.float32)
    t = torch.from_numpy(x)
    out, indices = max_pool2d(x, 2, ceil_mode=True, return_indices=True)
    expected, expected_indices = F.max_pool2d(t, 2, ceil_mode=True, return_indices=True)
    assert out.shape == (3, 3, 3)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(avg_pool2d(x, 3, 1, 1), F.avg_pool2d(t, 3, 1, 1), atol=1e-6)
    empty = np.zeros((0, 2, 4, 4), dtype=np.float32)
    assert max_pool2d(empty, 2).shape == tuple(F.max_pool2d(torch.from_numpy(empty), 2).shape)
    assert avg_pool2d(empty, 2).shape == (0, 2, 2, 2)
    sums = avg_pool2d(x, 2, divisor_override=1)
    np.testing.assert_allclose(sums, F.avg_pool2d(t, 2, divisor_override=1), atol=1e-5)
    # A one-element tuple means the same value for height and width, as in PyTorch.
    np.testing.assert_array_equal(max_pool2d(x, (2,)), max_pool2d(x, 2))


def test_conv2d_accepts_same_and_valid_padding_unbatched_input_and_empty_batch() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 7)).astype(np.float32)
    for kernel, dilation in [((2, 3), 1), ((4, 4), (1, 2)), ((3, 2), 2), ((1, 1), 1)]:
        weight = rng.standard_normal((4, 3, *kernel)).astype(np.float32)
        for padding in ("same", "valid"):
            expected = F.conv2d(
                torch.from_numpy(x), torch.from_numpy(weight), None, 1, padding, dilation
            ).numpy()
            for conv in (conv2d_naive, conv2d_im2col):
                out = conv(x, weight, None, 1, padding, dilation)
                assert out.shape == expected.shape, (conv.__name__, kernel, padding)
                np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    expected = F.conv2d(torch.from_numpy(x[0]), torch.from_numpy(weight), padding=1).numpy()
    for conv in (conv2d_naive, conv2d_im2col):
        np.testing.assert_allclose(conv(x[0], weight, padding=1), expected, atol=1e-5)
        assert conv(x[:0], weight).shape == (0, 4, 4, 5)
    assert im2col(x[:0], 3, 3).shape == (0, 27)
    with pytest.raises(ValueError, match="not supported for strided convolutions"):
        conv2d_im2col(x, weight, stride=2, padding="same")
    with pytest.raises(ValueError, match="'same' or 'valid'"):
        conv2d_naive(x, weight, padding="full")


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
        (lambda: max_pool2d(np.zeros((1, 1, 1, 1)), 4, 2, ceil_mode=True), "even with ceil_mode"),
        (lambda: pool_output_size(5, 3, dilation=0), "dilation must be at least 1"),
        (lambda: pool_output_size(0, 1), "length must be at least 1"),
        (lambda: max_pool2d(np.zeros((1, 0, 4, 4)), 2), "only the batch axis may be 0"),
        (lambda: avg_pool2d(np.zeros((1, 1, 4, 4)), 2, divisor_override=0), "nonzero int"),
        (lambda: max_pool2d(np.zeros((4, 4)), 2), "or 3 (C, H, W)"),
        (lambda: conv2d_naive(np.zeros((1, 1, 1, 4, 4)), np.zeros((1, 1, 2, 2))), "or 3 (C, H, W)"),
    ],
)
def test_invalid_arguments_raise_clear_value_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


# --- Transposed convolution (chapter 05) -------------------------------------------------


@st.composite
def transpose_cases(draw: st.DrawFn) -> dict:
    """A random transposed convolution that PyTorch accepts (a positive output size)."""
    groups = draw(st.integers(1, 2))
    case = {
        "n": draw(st.integers(1, 2)),
        "in_channels": groups * draw(st.integers(1, 2)),
        "out_channels": groups * draw(st.integers(1, 2)),
        "groups": groups,
        "bias": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }
    for name, low, high in [("kernel", 1, 4), ("stride", 1, 3), ("dilation", 1, 3)]:
        case[name] = (draw(st.integers(low, high)), draw(st.integers(low, high)))
    case["output_padding"] = tuple(
        draw(st.integers(0, max(case["stride"][i], case["dilation"][i]) - 1)) for i in (0, 1)
    )
    case["size"] = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    # Padding up to what still leaves at least one output cell.
    case["padding"] = tuple(
        draw(
            st.integers(
                0,
                max(
                    0,
                    (
                        (case["size"][i] - 1) * case["stride"][i]
                        + case["dilation"][i] * (case["kernel"][i] - 1)
                        + case["output_padding"][i]
                    )
                    // 2,
                ),
            )
        )
        for i in (0, 1)
    )
    return case


@SETTINGS
@given(transpose_cases())
def test_conv_transpose2d_matches_pytorch(case: dict) -> None:
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["in_channels"], *case["size"])).astype(np.float32)
    shape = (case["in_channels"], case["out_channels"] // case["groups"], *case["kernel"])
    weight = rng.standard_normal(shape).astype(np.float32)
    bias = rng.standard_normal(case["out_channels"]).astype(np.float32) if case["bias"] else None
    args = (case["stride"], case["padding"], case["output_padding"], case["groups"])
    torch_bias = None if bias is None else torch.from_numpy(bias)
    try:
        expected = F.conv_transpose2d(
            torch.from_numpy(x), torch.from_numpy(weight), torch_bias, *args, case["dilation"]
        ).numpy()
    except RuntimeError:
        event("PyTorch refuses")
        for conv in (conv_transpose2d, conv_transpose2d_direct):
            with pytest.raises(ValueError):
                conv(x, weight, bias, *args, case["dilation"])
        return
    for conv in (conv_transpose2d, conv_transpose2d_direct):
        out = conv(x, weight, bias, *args, case["dilation"])
        assert out.shape == expected.shape, conv.__name__
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4, err_msg=conv.__name__)


def _pytorch_transpose_size(length, kernel, stride, padding, output_padding, dilation):
    """The output length of nn.ConvTranspose1d, or None where PyTorch refuses."""
    layer = torch.nn.ConvTranspose1d(
        1, 1, kernel, stride, padding, output_padding, dilation=dilation, bias=False
    )
    try:
        return layer(torch.zeros(1, 1, length)).shape[-1]
    except RuntimeError:
        return None


def test_conv_transpose_output_size_agrees_with_pytorch_on_every_small_configuration() -> None:
    checked = refused = 0
    for length, kernel, stride, padding, output_padding, dilation in itertools.product(
        range(1, 6), range(1, 5), range(1, 4), range(0, 5), range(0, 3), range(1, 3)
    ):
        args = (length, kernel, stride, padding, output_padding, dilation)
        expected = _pytorch_transpose_size(*args)
        if expected is None:
            refused += 1
            with pytest.raises(ValueError):
                conv_transpose_output_size(*args)
        else:
            checked += 1
            assert conv_transpose_output_size(*args) == expected, args
    assert checked > 500 and refused > 100


@SETTINGS
@given(
    st.integers(1, 40),
    st.integers(1, 7),
    st.integers(1, 5),
    st.integers(0, 6),
    st.integers(1, 4),
)
def test_transposed_size_inverts_the_convolution_size(
    length: int, kernel: int, stride: int, padding: int, dilation: int
) -> None:
    """Every input length of a convolution is recovered by one output_padding below the stride."""
    span = dilation * (kernel - 1) + 1
    if span > length + 2 * padding:
        return
    out = conv_output_size(length, kernel, stride, padding, dilation)
    # The lengths that the convolution maps to `out` differ only in the dropped remainder.
    base = (out - 1) * stride - 2 * padding + span
    assert 0 <= length - base < stride
    output_padding = length - base
    args = (out, kernel, stride, padding, output_padding, dilation)
    if output_padding >= dilation:
        event("output_padding needs the stride")
    assert conv_transpose_output_size(*args) == length == _pytorch_transpose_size(*args)


def test_conv_transpose_output_size_errors_name_the_argument() -> None:
    cases = [
        (lambda: conv_transpose_output_size(3, 3, stride=1, output_padding=1), "output_padding=1"),
        (lambda: conv_transpose_output_size(3, 3, stride=2, output_padding=2), "smaller than"),
        (lambda: conv_transpose_output_size(3, 3, padding=-1), "padding must be at least 0"),
        (lambda: conv_transpose_output_size(3, 3, stride=0), "stride must be at least 1"),
        (lambda: conv_transpose_output_size(3, 3, dilation=0), "dilation must be at least 1"),
        (lambda: conv_transpose_output_size(2, 3, padding=2), "use less padding"),
        (lambda: conv_transpose_output_size(0, 3), "length must be at least 1"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            call()
    # Allowed: output_padding below the dilation even with stride 1, as in PyTorch.
    assert conv_transpose_output_size(3, 3, stride=1, output_padding=1, dilation=2) == 8


def test_conv_transpose2d_rejects_bad_shapes() -> None:
    x = np.zeros((1, 2, 3, 3))
    with pytest.raises(ValueError, match="weight.shape\\[0\\] must equal"):
        conv_transpose2d(x, np.zeros((3, 1, 2, 2)))
    with pytest.raises(ValueError, match="bias must have shape \\(4,\\)"):
        conv_transpose2d(x, np.zeros((2, 2, 2, 2)), np.zeros(3), groups=2)
    with pytest.raises(ValueError, match="groups=3 must divide"):
        conv_transpose2d_direct(x, np.zeros((2, 1, 2, 2)), groups=3)
    assert conv_transpose2d(x[0], np.ones((2, 1, 2, 2))).shape == (1, 4, 4)


def test_insert_zeros_spreads_pixels() -> None:
    x = np.arange(1, 5, dtype=float).reshape(1, 1, 2, 2)
    spread = insert_zeros(x, 2)
    assert spread[0, 0].tolist() == [[1, 0, 2], [0, 0, 0], [3, 0, 4]]
    assert insert_zeros(x, (1, 3)).shape == (1, 1, 2, 4)


@pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2), (3, 0, 1)])
def test_convolution_matrix_and_its_transpose_match_pytorch(
    stride: int, padding: int, dilation: int
) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 6))
    weight = rng.standard_normal((3, 2, 3, 3))
    matrix = convolution_matrix(x.shape, weight, stride, padding, dilation)
    y = F.conv2d(
        torch.from_numpy(x)[None], torch.from_numpy(weight), None, stride, padding, dilation
    )
    assert matrix.shape == (y.numel(), x.size)
    np.testing.assert_allclose(matrix @ x.ravel(), y.numpy().ravel(), atol=1e-10)
    # The transpose is the transposed convolution (output_padding restores the input's size).
    g = rng.standard_normal(y.shape[1:])
    out_pad = [
        x.shape[1 + i] - conv_transpose_output_size(y.shape[2 + i], 3, stride, padding, 0, dilation)
        for i in (0, 1)
    ]
    back = F.conv_transpose2d(
        torch.from_numpy(g)[None],
        torch.from_numpy(weight),
        None,
        stride,
        padding,
        tuple(out_pad),
        1,
        dilation,
    )
    np.testing.assert_allclose(matrix.T @ g.ravel(), back.numpy().ravel(), atol=1e-10)
    with pytest.raises(ValueError, match="input_shape must be"):
        convolution_matrix((5, 6), weight)
    with pytest.raises(ValueError, match="input channels"):
        convolution_matrix((4, 5, 6), weight)
