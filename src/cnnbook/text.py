"""Character vocabularies, one-hot encoding and training windows for the RNN chapters.

A vocabulary is a plain list of characters in sorted order, so that the same
text gives the same indices in every Python process (``list(set(text))`` does
not: string hashing is randomised per process). :func:`encode` and
:func:`decode` translate between text and index tensors (``nn.functional.one_hot``
turns indices into the vectors an ``nn.RNN`` reads), :func:`sliding_windows` cuts a
long text into (input, target) pairs shifted by one character, and
:func:`sample_text` lets a trained character model write.
"""

from __future__ import annotations

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
