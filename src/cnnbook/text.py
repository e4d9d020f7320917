"""Character vocabularies, one-hot encoding and training windows for the RNN chapters.

A vocabulary is a plain list of characters in sorted order, so that the same
text gives the same indices in every Python process (``list(set(text))`` does
not: string hashing is randomised per process). :func:`encode` and
:func:`decode` translate between text and index tensors (``nn.functional.one_hot``
turns indices into the vectors an ``nn.RNN`` reads), :func:`sliding_windows` cuts a
long text into (input, target) pairs shifted by one character, and
:func:`sample_text` lets a trained character model write.

For a real corpus (chapter 18): :func:`split_by_position` holds out the end of
the text, :func:`speaker_counts` counts the speeches of a play's speakers, :func:`bigram_counts` gives the count baseline, :func:`random_windows`
and :func:`consecutive_windows` give training batches (the latter for truncated
backpropagation through time, with :func:`detach_hidden`), and
:func:`evaluate_language_model` measures the cross-entropy that
:func:`perplexity` and :func:`bits_per_character` translate.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence

import torch
from torch import nn


def build_vocab(text: str) -> list[str]:
    """Return the distinct characters of ``text``, sorted, as the vocabulary.

    Sorting makes the order (and so every index, one-hot vector and trained
    weight) the same in every run; ``list(set(text))`` would change with the
    process's string-hash seed.

    Introduced in chapter 16.
    """
    if not isinstance(text, str):
        raise ValueError(
            f"text must be a str, got {type(text).__name__}; join a list with ''.join()."
        )
    if not text:
        raise ValueError("text is empty; a vocabulary needs at least one character.")
    return sorted(set(text))


def char_to_index(vocab: Sequence[str]) -> dict[str, int]:
    """Return the dictionary ``{character: index}`` of a vocabulary (``char_dic`` in the chapters).

    Raises ``ValueError`` if a character appears twice, since two indices for one
    character would make decoding ambiguous.

    Introduced in chapter 15.
    """
    mapping = {c: i for i, c in enumerate(vocab)}
    if len(mapping) != len(vocab):
        duplicates = sorted({c for c in vocab if list(vocab).count(c) > 1})
        raise ValueError(
            f"vocab has repeated characters {duplicates}; build it with build_vocab(text)."
        )
    return mapping


def _as_mapping(vocab: Sequence[str] | Mapping[str, int]) -> Mapping[str, int]:
    return vocab if isinstance(vocab, Mapping) else char_to_index(vocab)


def encode(text: str, vocab: Sequence[str] | Mapping[str, int]) -> torch.Tensor:
    """Return the indices of the characters of ``text`` as an ``int64`` tensor of shape (L,).

    ``vocab`` is a vocabulary list or a ``char_to_index`` dictionary. A character
    outside the vocabulary raises a ``ValueError`` that names it.

    Introduced in chapter 15.
    """
    mapping = _as_mapping(vocab)
    unknown = sorted({c for c in text if c not in mapping})
    if unknown:
        raise ValueError(
            f"text contains characters {unknown} that are not in the vocabulary; "
            "build the vocabulary from a text that contains them (build_vocab)."
        )
    return torch.tensor([mapping[c] for c in text], dtype=torch.long)


def decode(indices: torch.Tensor | Sequence[int], vocab: Sequence[str]) -> str:
    """Return the text whose characters have the given indices in ``vocab`` (the inverse of :func:`encode`).

    ``indices`` is a 1-D tensor or a sequence of ints; an index outside
    ``range(len(vocab))`` raises a ``ValueError``.

    Introduced in chapter 15.
    """
    values = indices.tolist() if isinstance(indices, torch.Tensor) else list(indices)
    if values and isinstance(values[0], list):
        raise ValueError(
            "decode() takes one sequence of indices (1-D); decode each row of a batch separately."
        )
    bad = [i for i in values if not 0 <= int(i) < len(vocab)]
    if bad:
        raise ValueError(f"indices {bad} are outside the vocabulary of size {len(vocab)}.")
    return "".join(vocab[int(i)] for i in values)


def sliding_windows(text: str, length: int, stride: int = 1) -> list[tuple[str, str]]:
    """Cut ``text`` into (input, target) pairs of ``length`` characters, the target shifted by one.

    Window ``k`` starts at ``k * stride``: input ``text[s:s + length]`` and target
    ``text[s + 1:s + length + 1]``, so the model learns to predict each next
    character. A text of ``n`` characters gives ``(n - length - 1) // stride + 1``
    windows.

    Introduced in chapter 16.
    """
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length}.")
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}.")
    if len(text) < length + 1:
        raise ValueError(
            f"text has {len(text)} characters, too few for one window of length {length} "
            f"(it needs length + 1 = {length + 1}); use a shorter length or a longer text."
        )
    return [
        (text[start : start + length], text[start + 1 : start + length + 1])
        for start in range(0, len(text) - length, stride)
    ]


def windows_to_tensors(
    windows: Sequence[tuple[str, str]], vocab: Sequence[str] | Mapping[str, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode (input, target) windows as two ``int64`` tensors of shape (N, L).

    All windows must have the same length (those of :func:`sliding_windows` do).

    Introduced in chapter 16.
    """
    if not windows:
        raise ValueError("windows is empty; sliding_windows() of a longer text gives some.")
    lengths = {len(x) for x, _ in windows} | {len(y) for _, y in windows}
    if len(lengths) != 1:
        raise ValueError(f"all windows must have one length, got lengths {sorted(lengths)}.")
    inputs = torch.stack([encode(x, vocab) for x, _ in windows])
    targets = torch.stack([encode(y, vocab) for _, y in windows])
    return inputs, targets


@torch.no_grad()
def sample_text(
    model: nn.Module,
    vocab: Sequence[str],
    prompt: str,
    length: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> str:
    """Let a character model continue ``prompt`` by ``length`` characters and return the whole text.

    ``model(indices, hidden)`` must return ``(logits, hidden)`` with logits of
    shape (1, L, len(vocab)), as :class:`cnnbook.models.CharRNN` does. Each next
    character is drawn from ``softmax(logits / temperature)`` with ``generator``
    (seed it for a repeatable text); ``temperature=0`` takes the most likely
    character instead.

    Introduced in chapter 16.
    """
    if length < 0:
        raise ValueError(f"length must be non-negative, got {length}.")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}.")
    if not prompt:
        raise ValueError("prompt is empty; give at least one character to start from.")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    mapping = char_to_index(vocab)
    logits, hidden = model(encode(prompt, mapping).unsqueeze(0).to(device), None)
    chars = list(prompt)
    for _ in range(length):
        last = logits[0, -1].float().cpu()
        if temperature == 0:
            index = int(last.argmax())
        else:
            probabilities = torch.softmax(last / temperature, dim=0)
            index = int(torch.multinomial(probabilities, 1, generator=generator))
        chars.append(vocab[index])
        logits, hidden = model(torch.tensor([[index]], device=device), hidden)
    model.train(was_training)
    return "".join(chars)


# --- Language models on a real corpus (chapter 18) --------------------------------------------


def split_by_position(
    data: torch.Tensor, validation_fraction: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split an encoded text into its first part (training) and its last part (validation).

    The last ``validation_fraction`` of the positions is held out as one block.
    A random split by window would put overlapping windows on both sides (two
    windows one character apart share all but one character), so the validation
    text would mostly be training text. Works on any 1-D tensor (or sequence).

    Introduced in chapter 18.
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(
            f"validation_fraction must be between 0 and 1 (exclusive), got {validation_fraction}."
        )
    cut = round(len(data) * (1 - validation_fraction))
    if cut < 2 or len(data) - cut < 2:
        raise ValueError(
            f"a text of {len(data)} positions is too short to split with "
            f"validation_fraction={validation_fraction}; each part needs at least 2."
        )
    return data[:cut], data[cut:]


_SPEECH_HEADING = re.compile(r"(?:\A|(?<=\n\n))([A-Za-z][A-Za-z ]*):\n(?=[^\n])")


def speaker_counts(text: str) -> Counter[str]:
    """Count the speeches of each speaker in a play laid out as "tiny shakespeare" is.

    A speech starts with the speaker's name on a line of its own, ending in a
    colon, at the start of the text or after a blank line, and followed by a line
    of text. Only such a line counts as a name: a line of verse that ends in a
    colon (``"A brittle glory shineth in this face:"``) sits inside a speech, not
    after a blank line, and is not counted. Names are kept as the text writes
    them (``"ROMEO"`` in the original file, ``"Romeo"`` in a title-case copy).

    Introduced in chapter 18.
    """
    return Counter(_SPEECH_HEADING.findall(text))


def bigram_counts(indices: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Count how often each character follows each other: ``counts[previous, next]``, (V, V).

    ``indices`` is an encoded text (1-D ``int64``, values in ``range(vocab_size)``);
    the result is an ``int64`` matrix whose rows, normalised, are the bigram
    model's next-character distributions.

    Introduced in chapter 18.
    """
    if indices.dim() != 1 or indices.is_floating_point():
        raise ValueError(
            f"indices must be a 1-D integer tensor (an encoded text), got shape "
            f"{tuple(indices.shape)} and dtype {indices.dtype}."
        )
    if len(indices) and not 0 <= int(indices.min()) <= int(indices.max()) < vocab_size:
        raise ValueError(f"indices must lie in range({vocab_size}); encode with the same vocab.")
    pairs = indices[:-1].long() * vocab_size + indices[1:].long()
    return torch.bincount(pairs, minlength=vocab_size * vocab_size).reshape(vocab_size, vocab_size)


def perplexity(cross_entropy: float) -> float:
    """The perplexity ``exp(cross_entropy)`` of a mean cross-entropy in nats per character.

    A model with perplexity ``k`` is as uncertain, on average, as one choosing
    uniformly among ``k`` characters. Introduced in chapter 18.
    """
    return math.exp(cross_entropy)


def bits_per_character(cross_entropy: float) -> float:
    """A mean cross-entropy in nats (the natural log PyTorch uses) converted to bits: ``/ ln 2``.

    Introduced in chapter 18.
    """
    return cross_entropy / math.log(2)


def random_windows(
    data: torch.Tensor, length: int, batch_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``batch_size`` windows at random positions: inputs and targets of shape (N, L).

    Each input is ``data[s:s + length]`` for a random start ``s`` and its target
    ``data[s + 1:s + length + 1]``. Windows are independent, so each starts with
    an empty memory. Use ``generator`` for a reproducible sequence of batches.

    Introduced in chapter 18.
    """
    if length < 1 or batch_size < 1:
        raise ValueError(f"length and batch_size must be >= 1, got {length} and {batch_size}.")
    if len(data) < length + 1:
        raise ValueError(
            f"data has {len(data)} positions, too few for a window of length {length} "
            f"(it needs {length + 1})."
        )
    starts = torch.randint(0, len(data) - length, (batch_size,), generator=generator)
    offsets = torch.arange(length + 1)
    chunks = data[(starts.unsqueeze(1) + offsets).to(data.device)]
    return chunks[:, :-1], chunks[:, 1:]


def consecutive_windows(
    data: torch.Tensor, batch_size: int, length: int, drop_last: bool = True
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Cut a text into ``batch_size`` streams and the streams into consecutive windows.

    The text is split into ``batch_size`` equal contiguous pieces (the rows);
    window ``k`` holds characters ``k * length`` to ``(k + 1) * length`` of every
    row, so row ``b`` of window ``k + 1`` continues row ``b`` of window ``k``: the
    layout for truncated backpropagation through time, where the hidden state
    is carried from one window to the next. Returns (inputs, targets) pairs of
    shape (batch_size, length), views into ``data``. With ``drop_last`` (for
    training, where every batch should be full) the end of the streams that
    does not fill a window is dropped; without, it comes as a last, shorter
    window, so that every character of the streams is a target once. The last
    ``(len(data) - 1) % batch_size`` targets, which do not fill a row of the
    streams, are always left out.

    Introduced in chapter 18.
    """
    if length < 1 or batch_size < 1:
        raise ValueError(f"length and batch_size must be >= 1, got {length} and {batch_size}.")
    per_row = (len(data) - 1) // batch_size
    if per_row < length:
        raise ValueError(
            f"data has {len(data)} positions: {batch_size} streams of at least {length} "
            "characters need more; use a smaller batch_size or length."
        )
    inputs = data[: per_row * batch_size].view(batch_size, per_row)
    targets = data[1 : per_row * batch_size + 1].view(batch_size, per_row)
    end = per_row - length + 1 if drop_last else per_row
    return [
        (inputs[:, start : start + length], targets[:, start : start + length])
        for start in range(0, end, length)
    ]


_Hidden = torch.Tensor | tuple[torch.Tensor, ...]


def detach_hidden(hidden: _Hidden | None) -> _Hidden | None:
    """Cut a hidden state (a tensor, or an LSTM's ``(h, c)``) from the graph that computed it.

    The values are kept and carried on; the gradient stops here, so the next
    ``backward()`` runs through the current window only. Introduced in chapter 18.
    """
    if hidden is None:
        return None
    if isinstance(hidden, tuple):
        return tuple(state.detach() for state in hidden)
    return hidden.detach()


@torch.no_grad()
def evaluate_language_model(
    model: nn.Module,
    data: torch.Tensor,
    batch_size: int = 64,
    length: int = 100,
    carry_state: bool = True,
) -> tuple[float, float]:
    """Mean cross-entropy (nats per character) and next-character accuracy of ``model`` on ``data``.

    The text is read as in :func:`consecutive_windows` with ``drop_last=False``:
    ``batch_size`` streams, each scored to its end, so that every target is
    scored except the last ``(len(data) - 1) % batch_size``. Each stream starts
    from a zero state. With ``carry_state`` the hidden state is carried from
    each window to the next, so every character is predicted from everything
    before it in its stream; without, every window starts from a zero state, as
    in training on random windows.
    ``model(x, hidden)`` must return ``(logits, hidden)``. The model is put in
    eval mode and restored afterwards.

    Introduced in chapter 18.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    hidden = None
    total, correct, count = 0.0, 0, 0
    for inputs, targets in consecutive_windows(data, batch_size, length, drop_last=False):
        inputs, targets = inputs.to(device), targets.to(device)
        logits, hidden = model(inputs, hidden if carry_state else None)
        logits = logits.float().flatten(0, 1)
        total += nn.functional.cross_entropy(logits, targets.flatten(), reduction="sum").item()
        correct += int((logits.argmax(dim=1) == targets.flatten()).sum())
        count += targets.numel()
    model.train(was_training)
    return total / count, correct / count
