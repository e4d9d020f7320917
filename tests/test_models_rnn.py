"""Shapes, cells and learning of the character RNN in cnnbook.models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbook.models import CharRNN
from cnnbook.text import build_vocab, decode, encode


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_char_rnn_shapes(cell: str, num_layers: int) -> None:
    model = CharRNN(vocab_size=7, hidden_size=11, num_layers=num_layers, cell=cell)
    x = torch.randint(0, 7, (3, 5))
    logits, hidden = model(x)
    assert logits.shape == (3, 5, 7)
    states = hidden if cell == "lstm" else (hidden,)
    for state in states:
        assert state.shape == (num_layers, 3, 11)
    assert isinstance(model.rnn, CharRNN.CELLS[cell])


def test_indices_and_one_hot_give_the_same_logits() -> None:
    torch.manual_seed(0)
    model = CharRNN(vocab_size=5, hidden_size=4)
    x = torch.tensor([[0, 1, 0, 2, 3, 3]])
    by_index, h1 = model(x)
    by_vector, h2 = model(torch.nn.functional.one_hot(x, 5).float())
    assert torch.allclose(by_index, by_vector) and torch.allclose(h1, h2)


def test_hidden_state_carries_over() -> None:
    torch.manual_seed(0)
    model = CharRNN(vocab_size=5, hidden_size=4, cell="lstm")
    x = torch.randint(0, 5, (2, 6))
    whole, _ = model(x)
    first, hidden = model(x[:, :3])
    second, _ = model(x[:, 3:], hidden)
    assert torch.allclose(whole, torch.cat([first, second], dim=1), atol=1e-6)


def test_char_rnn_errors() -> None:
    with pytest.raises(ValueError, match="cell"):
        CharRNN(5, cell="transformer")
    with pytest.raises(ValueError, match="positive"):
        CharRNN(0)
    with pytest.raises(ValueError, match=r"\(N, L, 5\)"):
        CharRNN(5)(torch.zeros(2, 3, 4))


def test_char_rnn_learns_the_charseq_sample() -> None:
    torch.manual_seed(0)
    sample = "if you want you"
    vocab = build_vocab(sample)
    x = encode(sample[:-1], vocab).unsqueeze(0)
    y = encode(sample[1:], vocab).unsqueeze(0)
    model = CharRNN(len(vocab), hidden_size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for _ in range(150):
        logits, _ = model(x)
        loss = loss_fn(logits.view(-1, len(vocab)), y.view(-1))
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 10
    assert decode(model(x)[0].argmax(-1)[0], vocab) == "f you want you"
