"""Vocabularies, encoding, one-hot vectors, windows and sampling of cnnbook.text."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from cnnbook.models import CharLanguageModel
from cnnbook.text import (
    bigram_counts,
    bits_per_character,
    build_vocab,
    char_to_index,
    consecutive_windows,
    decode,
    detach_hidden,
    encode,
    evaluate_language_model,
    perplexity,
    random_windows,
    sample_text,
    sliding_windows,
    speaker_counts,
    split_by_position,
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


# --- Chapter 18: language-model utilities -----------------------------------------------------


def test_split_by_position_keeps_order_and_holds_out_the_end() -> None:
    data = torch.arange(100)
    train, val = split_by_position(data, 0.1)
    assert torch.equal(train, torch.arange(90)) and torch.equal(val, torch.arange(90, 100))
    assert split_by_position("abcdefghij", 0.2) == ("abcdefgh", "ij")


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_by_position_rejects_bad_fractions(fraction: float) -> None:
    with pytest.raises(ValueError, match="validation_fraction"):
        split_by_position(torch.arange(100), fraction)


def test_split_by_position_rejects_a_text_too_short() -> None:
    with pytest.raises(ValueError, match="too short"):
        split_by_position(torch.arange(3), 0.1)


def test_bigram_counts_counts_every_pair() -> None:
    vocab = build_vocab("abc")
    counts = bigram_counts(encode("abcab", vocab), len(vocab))
    assert counts.shape == (3, 3) and counts.dtype == torch.int64
    assert counts.tolist() == [[0, 2, 0], [0, 0, 1], [1, 0, 0]]  # ab twice, bc, ca
    assert int(counts.sum()) == 4


def test_bigram_counts_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="1-D integer"):
        bigram_counts(torch.zeros(2, 3, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="1-D integer"):
        bigram_counts(torch.zeros(4), 3)
    with pytest.raises(ValueError, match=r"range\(3\)"):
        bigram_counts(torch.tensor([0, 1, 3]), 3)


def test_perplexity_and_bits_per_character() -> None:
    uniform = math.log(65)  # the cross-entropy of a uniform guess among 65 characters
    assert perplexity(uniform) == pytest.approx(65)
    assert bits_per_character(uniform) == pytest.approx(math.log2(65))
    assert perplexity(0.0) == 1.0 and bits_per_character(math.log(2)) == pytest.approx(1.0)


def test_random_windows_are_shifted_slices_and_reproducible() -> None:
    data = torch.arange(50)
    x, y = random_windows(data, 8, 5, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 8)
    for row_x, row_y in zip(x, y, strict=True):
        start = int(row_x[0])
        assert torch.equal(row_x, torch.arange(start, start + 8))
        assert torch.equal(row_y, row_x + 1)
    again, _ = random_windows(data, 8, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, again)
    x, _ = random_windows(data, 49, 100, generator=torch.Generator().manual_seed(1))
    assert int(x[:, 0].max()) == 0  # the only start that fits


def test_random_windows_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="too few"):
        random_windows(torch.arange(5), 5, 2)
    with pytest.raises(ValueError, match=">= 1"):
        random_windows(torch.arange(5), 0, 2)


def test_consecutive_windows_continue_each_stream() -> None:
    data = torch.arange(41)  # 40 (input, target) positions: 4 streams of 10
    windows = consecutive_windows(data, batch_size=4, length=3)
    assert len(windows) == 3  # 10 // 3; the last position of each stream is dropped
    for x, y in windows:
        assert x.shape == y.shape == (4, 3) and torch.equal(y, x + 1)
    streams = torch.cat([x for x, _ in windows], dim=1)
    assert torch.equal(streams[:, 0], torch.tensor([0, 10, 20, 30]))
    assert torch.equal(streams, torch.arange(40).view(4, 10)[:, :9])


def test_consecutive_windows_keep_the_last_short_window_without_drop_last() -> None:
    data = torch.arange(42)  # 41 positions: 4 streams of 10, one target left over
    windows = consecutive_windows(data, batch_size=4, length=3, drop_last=False)
    assert [x.shape[1] for x, _ in windows] == [3, 3, 3, 1]
    streams = torch.cat([x for x, _ in windows], dim=1)
    targets = torch.cat([y for _, y in windows], dim=1)
    assert torch.equal(streams, torch.arange(40).view(4, 10))  # every stream read to its end
    assert torch.equal(targets, streams + 1)
    exact = consecutive_windows(torch.arange(41), batch_size=4, length=5, drop_last=False)
    assert [x.shape[1] for x, _ in exact] == [5, 5]  # no empty window when the rows divide


def test_consecutive_windows_reject_too_little_data() -> None:
    with pytest.raises(ValueError, match="smaller batch_size"):
        consecutive_windows(torch.arange(20), batch_size=8, length=5)
    with pytest.raises(ValueError, match=">= 1"):
        consecutive_windows(torch.arange(20), batch_size=0, length=5)


def test_detach_hidden_keeps_values_and_cuts_the_graph() -> None:
    weight = torch.ones(2, requires_grad=True)
    h, c = weight * 2, weight * 3
    detached = detach_hidden((h, c))
    assert isinstance(detached, tuple)
    assert all(not t.requires_grad for t in detached)
    assert torch.equal(detached[0], h.detach()) and torch.equal(detached[1], c.detach())
    single = detach_hidden(h)
    assert isinstance(single, torch.Tensor) and not single.requires_grad
    assert detach_hidden(None) is None


def test_evaluate_language_model_matches_a_hand_computed_loss() -> None:
    torch.manual_seed(0)
    vocab_size = 5
    data = torch.randint(0, vocab_size, (41,))
    model = CharLanguageModel(vocab_size, embedding_dim=3, hidden_size=4)
    model.train()
    loss, acc = evaluate_language_model(model, data, batch_size=2, length=5)
    assert model.training  # restored
    # The same thing by hand: two streams of 20, read whole (carrying the state is the same).
    x = data[:40].view(2, 20)
    y = data[1:41].view(2, 20)
    with torch.no_grad():
        logits, _ = model(x)
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert loss == pytest.approx(expected.item(), rel=1e-5)
    assert acc == pytest.approx((logits.argmax(-1) == y).float().mean().item())


def test_evaluate_language_model_without_carrying_restarts_every_window() -> None:
    torch.manual_seed(0)
    data = torch.randint(0, 5, (41,))
    model = CharLanguageModel(5, embedding_dim=3, hidden_size=4)
    loss, _ = evaluate_language_model(model, data, batch_size=2, length=5, carry_state=False)
    x = data[:40].view(2, 4, 5).transpose(0, 1).reshape(8, 5)  # every window on its own
    y = data[1:41].view(2, 4, 5).transpose(0, 1).reshape(8, 5)
    with torch.no_grad():
        logits, _ = model(x)
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert loss == pytest.approx(expected.item(), rel=1e-5)
    carried, _ = evaluate_language_model(model, data, batch_size=2, length=5)
    assert carried != pytest.approx(loss, rel=1e-6)  # the state made a difference


def test_evaluate_language_model_scores_the_end_of_every_stream() -> None:
    torch.manual_seed(0)
    data = torch.randint(0, 5, (44,))  # 43 targets: 2 streams of 21, one left over
    model = CharLanguageModel(5, embedding_dim=3, hidden_size=4)
    loss, acc = evaluate_language_model(model, data, batch_size=2, length=5)
    x, y = data[:42].view(2, 21), data[1:43].view(2, 21)  # windows of 5, 5, 5, 5 and 1
    with torch.no_grad():
        logits, _ = model(x)
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert loss == pytest.approx(expected.item(), rel=1e-5)
    assert acc == pytest.approx((logits.argmax(-1) == y).float().mean().item())


def test_speaker_counts_counts_only_lines_that_start_a_speech() -> None:
    play = (
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
        "All:\nSpeak, speak.\n\n"
        "KING RICHARD II:\nA brittle glory shineth in this face:\nAs brittle as the glory is the face;\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
        "Ghost:\n\nNot a speaker:\n"
    )
    counts = speaker_counts(play)
    assert counts == {"First Citizen": 2, "All": 1, "KING RICHARD II": 1}
    assert "A brittle glory shineth in this face" not in counts  # verse inside a speech
    assert speaker_counts("Romeo:\nHe jests at scars.") == {"Romeo": 1}
    assert speaker_counts("no speech here") == {}
