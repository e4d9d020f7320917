"""Animations of convolution arithmetic: the kernel sliding over the input, the output filling in.

The pictures follow Dumoulin and Visin's guide to convolution arithmetic: the
input (blue) with its zero padding (dashed), the kernel's taps (dark) at one
position, and the output (green) with the cell being computed. A transposed
convolution is drawn as its equivalent direct convolution: zeros inserted
between the input's pixels, padding around them, and a stride-1 kernel.

The geometry (which cells each step uses) is computed by
:func:`convolution_steps`, separately from the drawing, so that it can be
tested. :func:`animate_convolution` draws one small matplotlib frame per
output cell and returns a :class:`ConvolutionAnimation`, which a notebook
displays as self-contained HTML: the frames are PNGs inside the page (no
network, no kernel needed), played by a few lines of JavaScript with a
play/pause button, step buttons and a slider.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle
from PIL import Image

from .conv import conv_output_size, conv_transpose_output_size

#: What each cell of the drawn input grid holds.
PADDING, PIXEL, INSERTED_ZERO = 0, 1, 2

_PIXEL_COLOUR = "#9ecae1"
_KERNEL_COLOUR = "#08519c"
_DONE_COLOUR = "#a1d99b"
_CURRENT_COLOUR = "#238b45"
_EDGE_COLOUR = "#525252"
_EMPTY_EDGE = "#9e9e9e"


@dataclass(frozen=True)
class SlidingWindows:
    """Where a kernel lands, step by step, on the grid an animation draws (one axis pair).

    ``cells`` is the drawn input grid, with :data:`PADDING`, :data:`PIXEL` or
    :data:`INSERTED_ZERO` in each cell; ``output_shape`` is the output's
    (height, width); ``taps[t]`` lists the (row, column) grid cells that the
    kernel's taps cover at step ``t``, which computes output cell
    ``divmod(t, output_shape[1])``.

    Introduced in chapter 03.
    """

    cells: np.ndarray
    output_shape: tuple[int, int]
    taps: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def steps(self) -> int:
        """The number of steps: one per output cell."""
        return len(self.taps)


def convolution_steps(
    input_size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    transposed: bool = False,
    output_padding: int = 0,
) -> SlidingWindows:
    """The steps of a square convolution (or transposed convolution) on a square input.

    For an ordinary convolution the grid is the input with ``padding`` cells of
    zeros around it, and the kernel moves ``stride`` cells at a time. For a
    transposed convolution (``transposed=True``) the grid is its equivalent
    direct convolution: ``stride - 1`` zeros inserted between the input's
    pixels, ``dilation*(kernel_size - 1) - padding`` cells of padding around
    them (``output_padding`` more at the bottom and right), and a kernel moving
    one cell at a time. The output size is checked against
    ``conv_output_size`` or ``conv_transpose_output_size``, which raise
    ``ValueError`` for invalid arguments.

    Introduced in chapter 03.
    """
    if transposed:
        out = conv_transpose_output_size(
            input_size, kernel_size, stride, padding, output_padding, dilation
        )
        edge = dilation * (kernel_size - 1) - padding
        if edge < 0:
            raise ValueError(
                f"padding={padding} is larger than dilation*(kernel_size-1) = "
                f"{dilation * (kernel_size - 1)}; the direct view would crop the input, which "
                "the animation does not draw. Use padding <= dilation*(kernel_size-1)."
            )
        spread = (input_size - 1) * stride + 1
        cells = np.full((spread + 2 * edge + output_padding,) * 2, PADDING)
        inner = np.full((spread, spread), INSERTED_ZERO)
        inner[::stride, ::stride] = PIXEL
        cells[edge : edge + spread, edge : edge + spread] = inner
        step = 1
    else:
        if output_padding:
            raise ValueError("output_padding only applies to a transposed convolution.")
        out = conv_output_size(input_size, kernel_size, stride, padding, dilation)
        cells = np.full((input_size + 2 * padding,) * 2, PADDING)
        cells[padding : padding + input_size, padding : padding + input_size] = PIXEL
        step = stride
    taps = tuple(
        tuple(
            (i * step + a * dilation, j * step + b * dilation)
            for a in range(kernel_size)
            for b in range(kernel_size)
        )
        for i in range(out)
        for j in range(out)
    )
    windows = SlidingWindows(cells=cells, output_shape=(out, out), taps=taps)
    last = max(max(r, c) for r, c in taps[-1])
    if last >= cells.shape[0]:  # the formula and the drawing must agree
        raise AssertionError(f"the last window reaches cell {last} of {cells.shape[0]}")
    return windows


@dataclass(frozen=True, repr=False)
class ConvolutionAnimation:
    """An animation as PNG frames, shown in a notebook or on the site as self-contained HTML.

    ``frames`` are PNG files (bytes) of ``width`` x ``height`` pixels, one per
    step; ``alt`` describes the animation for readers who cannot see it;
    ``interval_ms`` is the time per frame. ``to_html`` (and Jupyter's
    ``_repr_html_``) embeds the frames as ``data:`` URLs with a small player
    that needs no network; without JavaScript the first frame shows.

    Introduced in chapter 03.
    """

    frames: tuple[bytes, ...]
    width: int
    height: int
    alt: str
    interval_ms: int = 700

    @property
    def nbytes(self) -> int:
        """The total size of the PNG frames, in bytes (the HTML is about 4/3 of this)."""
        return sum(len(frame) for frame in self.frames)

    def __repr__(self) -> str:
        return (
            f"ConvolutionAnimation({len(self.frames)} frames, {self.width}x{self.height} px, "
            f"{self.nbytes / 1024:.0f} KiB)"
        )

    def to_html(self) -> str:
        """The animation as one HTML fragment: an image, its controls and the player script."""
        digest = hashlib.sha1(b"".join(self.frames) + self.alt.encode()).hexdigest()[:12]
        uid = f"cnnbook-anim-{digest}"
        urls = [f"data:image/png;base64,{base64.b64encode(f).decode()}" for f in self.frames]
        count = len(urls)
        return _PLAYER.format(
            uid=uid,
            first=urls[0],
            alt=html.escape(self.alt, quote=True),
            width=self.width,
            height=self.height,
            last=count - 1,
            count=count,
            frames=json.dumps(urls),
            interval=int(self.interval_ms),
        )

    def _repr_html_(self) -> str:
        return self.to_html()


# The player: autoplay in a loop (unless the reader prefers reduced motion), a pause at the
# last frame, play/pause, step buttons and a slider. Plain DOM, no libraries.
_PLAYER = """<div class="cnnbook-animation" id="{uid}" style="max-width:{width}px;margin:0 auto">
<img src="{first}" alt="{alt}" width="{width}" height="{height}"
 style="width:100%;height:auto;display:block">
<div style="display:flex;gap:0.5em;align-items:center;margin-top:0.3em;font-size:0.9em">
<button type="button" data-act="play" style="min-width:4.5em">Pause</button>
<button type="button" data-act="prev" aria-label="Previous step">&#9664;</button>
<button type="button" data-act="next" aria-label="Next step">&#9654;</button>
<input type="range" min="0" max="{last}" value="0" aria-label="Step" style="flex:1">
<span data-act="label" style="min-width:5em;text-align:right">1 / {count}</span>
</div>
<script>
(function () {{
  var root = document.getElementById("{uid}");
  var frames = {frames};
  var img = root.querySelector("img"), slider = root.querySelector("input");
  var button = root.querySelector("[data-act=play]");
  var label = root.querySelector("[data-act=label]");
  var current = 0, timer = null, hold = 0;
  function show(i) {{
    current = (i + frames.length) % frames.length;
    img.src = frames[current];
    slider.value = current;
    label.textContent = (current + 1) + " / " + frames.length;
  }}
  function tick() {{
    if (current === frames.length - 1 && hold < 3) {{ hold += 1; return; }}
    hold = 0;
    show(current + 1);
  }}
  function play() {{ timer = setInterval(tick, {interval}); button.textContent = "Pause"; }}
  function pause() {{ clearInterval(timer); timer = null; button.textContent = "Play"; }}
  button.onclick = function () {{ if (timer) {{ pause(); }} else {{ play(); }} }};
  root.querySelector("[data-act=prev]").onclick = function () {{ pause(); show(current - 1); }};
  root.querySelector("[data-act=next]").onclick = function () {{ pause(); show(current + 1); }};
  slider.oninput = function () {{ pause(); show(parseInt(slider.value, 10)); }};
  var still = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  if (still) {{ button.textContent = "Play"; }} else {{ play(); }}
}})();
</script>
</div>"""


def _describe(
    input_size: int,
    kernel_size: int,
    stride: int,
    padding: int,
    dilation: int,
    transposed: bool,
    output_padding: int,
    output_size: int,
) -> str:
    settings = f"stride {stride}, padding {padding}, dilation {dilation}"
    if transposed:
        if output_padding:
            settings += f", output padding {output_padding}"
        return (
            f"Animation of a transposed convolution ({settings}) of a {input_size}×{input_size} "
            f"input drawn as a direct convolution: zeros between and around the input's "
            f"pixels, and a {kernel_size}×{kernel_size} kernel that slides one cell at a time, "
            f"filling in the {output_size}×{output_size} output one cell per step."
        )
    return (
        f"Animation of a {kernel_size}×{kernel_size} kernel ({settings}) sliding over a "
        f"{input_size}×{input_size} input, filling in the {output_size}×{output_size} output "
        "one cell per step."
    )


def _grid_axes(ax: plt.Axes, size: int) -> None:
    ax.set_xlim(-0.1, size + 0.1)
    ax.set_ylim(size + 0.1, -0.1)  # row 0 at the top, like an image
    ax.set_aspect("equal")
    ax.axis("off")


def _png(fig: plt.Figure, colours: int) -> bytes:
    """The figure as a palette PNG: flat colours compress to a few KiB per frame."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    image.save(out, format="png", optimize=True)
    return out.getvalue()


def animate_convolution(
    input_size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    transposed: bool = False,
    output_padding: int = 0,
    title: str | None = None,
    alt: str | None = None,
    width_in: float = 7.0,
    dpi: int = 100,
    interval_ms: int = 700,
) -> ConvolutionAnimation:
    """Draw each step of a convolution (or transposed convolution) and return the animation.

    Left, the input grid of :func:`convolution_steps`: pixels in blue, padding
    and inserted zeros as dashed white cells, the kernel's taps in dark blue
    with the outline of the window. Right, the output: cells already computed
    in light green, the current one in dark green. One frame per output cell,
    ``width_in`` inches wide at ``dpi`` (7 in at 100 dpi fits the book's
    column, with labels of at least 10 pt). ``title`` goes above the frames;
    ``alt`` defaults to a sentence describing the case.

    Introduced in chapter 03.
    """
    windows = convolution_steps(
        input_size, kernel_size, stride, padding, dilation, transposed, output_padding
    )
    grid = windows.cells.shape[0]
    out_h, out_w = windows.output_shape
    # Same cell size on both sides, so that the output's size reads against the input's.
    gap = 2.0
    cell = min((width_in - 0.4) / (grid + out_w + gap), 0.42)
    top = 0.75 if title else 0.45
    height_in = max(grid, out_h) * cell + top + 0.15
    fig = plt.figure(figsize=(width_in, height_in), dpi=dpi)
    span = (grid + out_w + gap) * cell
    left0 = (width_in - span) / 2
    bottom = 0.15 / height_in
    ax_in = fig.add_axes(
        (left0 / width_in, bottom, grid * cell / width_in, grid * cell / height_in)
    )
    ax_out = fig.add_axes(
        (
            (left0 + (grid + gap) * cell) / width_in,
            bottom + (grid - out_h) * cell / height_in / 2 if grid > out_h else bottom,
            out_w * cell / width_in,
            out_h * cell / height_in,
        )
    )
    _grid_axes(ax_in, grid)
    _grid_axes(ax_out, out_w)
    for (r, c), kind in np.ndenumerate(windows.cells):
        if kind == PIXEL:
            ax_in.add_patch(Rectangle((c, r), 1, 1, fc=_PIXEL_COLOUR, ec=_EDGE_COLOUR, lw=0.8))
        else:
            ax_in.add_patch(
                Rectangle((c, r), 1, 1, fc="white", ec=_EMPTY_EDGE, lw=0.8, ls=(0, (3, 2)))
            )
    out_cells = {}
    for r in range(out_h):
        for c in range(out_w):
            out_cells[r, c] = Rectangle((c, r), 1, 1, fc="white", ec=_EDGE_COLOUR, lw=0.8)
            ax_out.add_patch(out_cells[r, c])
    taps = [
        Rectangle((0, 0), 1, 1, fc=_KERNEL_COLOUR, alpha=0.55, ec="none")
        for _ in range(kernel_size**2)
    ]
    for tap in taps:
        ax_in.add_patch(tap)
    window = Rectangle((0, 0), 1, 1, fill=False, ec=_KERNEL_COLOUR, lw=2.0)
    ax_in.add_patch(window)
    if transposed:
        done = "spread and padded" if stride > 1 else "padded"
        left_title = f"input {input_size}×{input_size}, {done}: {grid}×{grid}"
    elif padding:
        left_title = f"input {input_size}×{input_size}, padded: {grid}×{grid}"
    else:
        left_title = f"input {input_size}×{input_size}"
    ax_in.set_title(left_title, fontsize=10)
    ax_out.set_title(f"output: {out_h}×{out_w}", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.08 / height_in, va="top")
    frames = []
    previous = None
    for step, positions in enumerate(windows.taps):
        for tap, (r, c) in zip(taps, positions, strict=True):
            tap.set_xy((c, r))
        rows = [r for r, _ in positions]
        cols = [c for _, c in positions]
        window.set_xy((min(cols), min(rows)))
        window.set_width(max(cols) - min(cols) + 1)
        window.set_height(max(rows) - min(rows) + 1)
        current = divmod(step, out_w)
        if previous is not None:
            out_cells[previous].set_facecolor(_DONE_COLOUR)
        out_cells[current].set_facecolor(_CURRENT_COLOUR)
        previous = current
        frames.append(_png(fig, colours=32))
    width, height = Image.open(io.BytesIO(frames[0])).size
    plt.close(fig)
    description = alt or _describe(
        input_size,
        kernel_size,
        stride,
        padding,
        dilation,
        transposed,
        output_padding,
        out_h,
    )
    return ConvolutionAnimation(tuple(frames), width, height, description, interval_ms)
