"""The convolution animations: the geometry they draw is the convolution PyTorch computes."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnbook.animation import (
    INSERTED_ZERO,
    PADDING,
    PIXEL,
    ConvolutionAnimation,
    animate_convolution,
    convolution_steps,
)
from cnnbook.conv import conv_output_size, conv_transpose_output_size


def _apply(windows, kernel: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Run the drawn steps: each output cell is the sum of kernel x the grid under its taps."""
    grid = np.zeros(windows.cells.shape)
    grid[windows.cells == PIXEL] = values.ravel()
    out = np.array(
        [
            sum(k * grid[r, c] for k, (r, c) in zip(kernel.ravel(), taps, strict=True))
            for taps in windows.taps
        ]
    )
    return out.reshape(windows.output_shape)


@settings(max_examples=40, deadline=None, database=None)
@given(
    st.integers(1, 6), st.integers(1, 4), st.integers(1, 3), st.integers(0, 3), st.integers(1, 3)
)
def test_the_drawn_steps_compute_pytorchs_convolution(size, kernel, stride, padding, dilation):
    if dilation * (kernel - 1) + 1 > size + 2 * padding:
        with pytest.raises(ValueError):
            convolution_steps(size, kernel, stride, padding, dilation)
        return
    windows = convolution_steps(size, kernel, stride, padding, dilation)
    out = conv_output_size(size, kernel, stride, padding, dilation)
    assert windows.output_shape == (out, out) and windows.steps == out * out
    assert (windows.cells == PIXEL).sum() == size * size
    assert (windows.cells == PADDING).sum() == (size + 2 * padding) ** 2 - size * size
    rng = np.random.default_rng(size * 100 + kernel)
    x, w = rng.standard_normal((size, size)), rng.standard_normal((kernel, kernel))
    expected = F.conv2d(
        torch.from_numpy(x)[None, None],
        torch.from_numpy(w)[None, None],
        None,
        stride,
        padding,
        dilation,
    )
    np.testing.assert_allclose(_apply(windows, w, x), expected[0, 0].numpy(), atol=1e-10)


@settings(max_examples=40, deadline=None, database=None)
@given(
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(0, 3),
    st.integers(1, 2),
    st.integers(0, 2),
)
def test_the_drawn_transposed_steps_compute_pytorchs_transposed_convolution(
    size, kernel, stride, padding, dilation, output_padding
):
    args = (size, kernel, stride, padding, dilation, True, output_padding)
    try:
        out = conv_transpose_output_size(size, kernel, stride, padding, output_padding, dilation)
    except ValueError:
        with pytest.raises(ValueError):
            convolution_steps(*args)
        return
    if padding > dilation * (kernel - 1):
        with pytest.raises(ValueError, match="does not draw"):
            convolution_steps(*args)
        return
    windows = convolution_steps(*args)
    assert windows.output_shape == (out, out) and windows.steps == out * out
    assert (windows.cells == PIXEL).sum() == size * size
    assert (windows.cells == INSERTED_ZERO).sum() == ((size - 1) * stride + 1) ** 2 - size * size
    rng = np.random.default_rng(size * 100 + kernel)
    x, w = rng.standard_normal((size, size)), rng.standard_normal((kernel, kernel))
    expected = F.conv_transpose2d(
        torch.from_numpy(x)[None, None],
        torch.from_numpy(w)[None, None],
        None,
        stride,
        padding,
        output_padding,
        1,
        dilation,
    )
    # The direct view slides the kernel flipped in both directions.
    np.testing.assert_allclose(
        _apply(windows, w[::-1, ::-1], x), expected[0, 0].numpy(), atol=1e-10
    )


def test_sliding_windows_errors() -> None:
    with pytest.raises(ValueError, match="only applies to a transposed"):
        convolution_steps(5, 3, output_padding=1)
    with pytest.raises(ValueError, match="kernel_size=5"):
        convolution_steps(3, 5)
    with pytest.raises(ValueError, match="smaller than the stride"):
        convolution_steps(3, 3, stride=1, output_padding=1, transposed=True)


def test_animation_frames_sizes_and_html() -> None:
    animation = animate_convolution(4, 3, padding=1, stride=2, title="stride 2, padding 1")
    assert isinstance(animation, ConvolutionAnimation)
    assert len(animation.frames) == conv_output_size(4, 3, 2, 1) ** 2 == 4
    for frame in animation.frames:
        image = Image.open(io.BytesIO(frame))
        assert image.format == "PNG" and image.size == (animation.width, animation.height)
    assert animation.width == 700  # 7 in at 100 dpi: the book's column
    assert len(set(animation.frames)) == len(animation.frames)  # every step looks different
    assert re.fullmatch(r"ConvolutionAnimation\(4 frames, 700x\d+ px, \d+ KiB\)", repr(animation))
    page = animation.to_html()
    assert page == animation._repr_html_() == animation.to_html()  # deterministic ids
    urls = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert [base64.b64decode(u) for u in urls[1:]] == list(animation.frames)
    assert urls[0] == urls[1]  # the first frame shows before the script runs
    assert "http" not in page  # nothing to fetch: plays offline
    assert f'alt="{animation.alt}"' in page and "4×4 input" in animation.alt
    assert page.count("<img") == 1 and page.count("<script>") == 1


def test_transposed_animation_describes_itself() -> None:
    animation = animate_convolution(2, 3, stride=2, transposed=True, output_padding=1, alt=None)
    assert len(animation.frames) == conv_transpose_output_size(2, 3, 2, 0, 1) ** 2 == 36
    assert "transposed convolution" in animation.alt and "output padding 1" in animation.alt
    custom = animate_convolution(3, 2, alt="A 2×2 kernel on a 3×3 input.")
    assert custom.alt == "A 2×2 kernel on a 3×3 input." and custom.nbytes == sum(
        len(f) for f in custom.frames
    )
