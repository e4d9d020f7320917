"""Vocabularies, encoding, one-hot vectors, windows and sampling of cnnbook.text."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from cnnbook.text import (
    build_vocab,
    char_to_index,
    decode,
    encode,
    sample_text,
    sliding_windows,
    windows_to_tensors,
)


def test_build_vocab_is_sorted_and_unique() -> None:
    assert build_vocab("if you want you") == [" ", "a", "f", "i", "n", "o", "t", "u", "w", "y"]
    assert build_vocab("hihello") == ["e", "h", "i", "l", "o"]


def test_build_vocab_is_the_same_under_every_hash_seed() -> None:
    code = "from cnnbook.text import build_vocab; print(''.join(build_vocab('if you want you')))"
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        outputs.add(result.stdout)
    assert outputs == {" afinotuwy\n"}


def test_build_vocab_rejects_empty_and_non_strings() -> None:
    with pytest.raises(ValueError, match="empty"):
        build_vocab("")
    with pytest.raises(ValueError, match="str"):
        build_vocab(["a", "b"])  # type: ignore[arg-type]


def test_char_to_index_and_duplicates() -> None:
    assert char_to_index(["h", "i", "e"]) == {"h": 0, "i": 1, "e": 2}
    with pytest.raises(ValueError, match="repeated"):
        char_to_index(["a", "b", "a"])


@pytest.mark.parametrize("text", ["if you want you", "hihello", "a", "the quick brown fox"])
def test_encode_decode_round_trip(text: str) -> None:
    vocab = build_vocab(text)
    indices = encode(text, vocab)
    assert indices.dtype == torch.long and indices.shape == (len(text),)
    assert decode(indices, vocab) == text
    assert decode(indices.tolist(), vocab) == text
    assert torch.equal(encode(text, char_to_index(vocab)), indices)


def test_encode_course_indices() -> None:
    char_set = ["h", "i", "e", "l", "o"]
    assert encode("hihell", char_set).tolist() == [0, 1, 0, 2, 3, 3]
    assert encode("ihello", char_set).tolist() == [1, 0, 2, 3, 3, 4]


def test_encode_names_unknown_characters() -> None:
    with pytest.raises(ValueError, match=r"\['x', 'z'\]"):
        encode("hixz", ["h", "i"])


def test_decode_rejects_bad_indices() -> None:
    with pytest.raises(ValueError, match="outside"):
        decode([0, 5], ["a", "b"])
    with pytest.raises(ValueError, match="1-D"):
        decode(torch.zeros(2, 3, dtype=torch.long), ["a"])


def test_sliding_windows_shift_by_one() -> None:
    windows = sliding_windows("abcdef", 3)
    assert windows == [("abc", "bcd"), ("bcd", "cde"), ("cde", "def")]
    assert sliding_windows("abcdefg", 2, stride=2) == [("ab", "bc"), ("cd", "de"), ("ef", "fg")]
    text = "if you want to build a ship"
    for length in (1, 5, 10):
        for stride in (1, 3):
            assert (
                len(sliding_windows(text, length, stride)) == (len(text) - length - 1) // stride + 1
            )


def test_sliding_windows_errors() -> None:
    with pytest.raises(ValueError, match="too few"):
        sliding_windows("abc", 3)
    with pytest.raises(ValueError, match="length"):
        sliding_windows("abc", 0)
    with pytest.raises(ValueError, match="stride"):
        sliding_windows("abcd", 1, stride=0)


def test_windows_to_tensors_shapes() -> None:
    text = "if you want you"
    vocab = build_vocab(text)
    inputs, targets = windows_to_tensors(sliding_windows(text, 4), vocab)
    assert inputs.shape == targets.shape == (11, 4)
    assert torch.equal(inputs[1:, -1], targets[:-1, -1])
    with pytest.raises(ValueError, match="one length"):
        windows_to_tensors([("ab", "bc"), ("a", "b")], vocab)


class _Repeater(torch.nn.Module):
    """A fake model that always predicts the character after the last one (cyclically)."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, hidden: object = None) -> tuple[torch.Tensor, object]:
        logits = torch.nn.functional.one_hot((x + 1) % self.vocab_size, self.vocab_size).float()
        return logits * 100, hidden


def test_sample_text_greedy_and_seeded() -> None:
    vocab = list("abcd")
    model = _Repeater(4)
    assert sample_text(model, vocab, "a", 5, temperature=0) == "abcdab"

    def draw(seed: int) -> str:
        return sample_text(
            model, vocab, "ab", 20, temperature=50.0, generator=torch.Generator().manual_seed(seed)
        )

    assert draw(1) == draw(1) and len(draw(1)) == 22
    assert len({draw(s) for s in range(5)}) > 1
    with pytest.raises(ValueError, match="prompt"):
        sample_text(model, vocab, "", 3)
