"""Shapes, cells and learning of the character RNN in cnnbook.models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbook.models import CharLanguageModel, CharRNN
from cnnbook.text import build_vocab, decode, encode, sample_text


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


# --- Chapter 18: the character language model ------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_char_language_model_shapes(cell: str, num_layers: int) -> None:
    model = CharLanguageModel(9, embedding_dim=4, hidden_size=6, num_layers=num_layers, cell=cell)
    logits, hidden = model(torch.randint(0, 9, (3, 5)))
    assert logits.shape == (3, 5, 9)
    states = hidden if cell == "lstm" else (hidden,)
    for state in states:
        assert state.shape == (num_layers, 3, 6)


def test_char_language_model_embedding_is_a_linear_layer_on_one_hot_vectors() -> None:
    torch.manual_seed(0)
    model = CharLanguageModel(7, embedding_dim=3, hidden_size=4)
    x = torch.randint(0, 7, (2, 6))
    linear = nn.Linear(7, 3, bias=False)
    with torch.no_grad():
        linear.weight.copy_(model.embedding.weight.T)
    one_hot = nn.functional.one_hot(x, 7).float()
    assert torch.allclose(model.embedding(x), linear(one_hot))


def test_char_language_model_carries_its_hidden_state() -> None:
    torch.manual_seed(0)
    model = CharLanguageModel(5, embedding_dim=3, hidden_size=4)
    x = torch.randint(0, 5, (2, 8))
    whole, _ = model(x)
    first, hidden = model(x[:, :5])
    second, _ = model(x[:, 5:], hidden)
    assert torch.allclose(whole, torch.cat([first, second], dim=1), atol=1e-6)


def test_char_language_model_errors() -> None:
    with pytest.raises(ValueError, match="cell"):
        CharLanguageModel(5, cell="rnn")
    with pytest.raises(ValueError, match="positive"):
        CharLanguageModel(5, hidden_size=0)
    with pytest.raises(ValueError, match=r"indices of shape \(N, L\)"):
        CharLanguageModel(5)(torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="encode"):
        CharLanguageModel(5)(torch.zeros(2, 3))


def test_char_language_model_learns_a_repeating_text_and_samples_it() -> None:
    torch.manual_seed(0)
    text = "to be or not to be " * 3
    vocab = build_vocab(text)
    data = encode(text, vocab)
    model = CharLanguageModel(len(vocab), embedding_dim=8, hidden_size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    x, y = data[:-1].view(1, -1), data[1:].view(1, -1)
    for _ in range(80):
        logits, _ = model(x)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1
    assert sample_text(model, vocab, "to be ", 13, temperature=0) == "to be or not to be "
