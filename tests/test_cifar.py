"""train_cifar10's step limit, and its device-dependent branches exercised on the CPU."""

from __future__ import annotations

import pytest
import torch

from cnnbook import cifar
from cnnbook.cifar import AutocastModel, CifarRecipe, train_cifar10
from cnnbook.device import synchronize
from cnnbook.models import CifarNet

TINY = {"widths": (8, 16, 16), "batch_size": 16, "whitening": True}


def _data(seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    train_x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=generator)
    train_y = torch.randint(0, 10, (64,), generator=generator)
    test_x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=generator)
    test_y = torch.randint(0, 10, (32,), generator=generator)
    return train_x, train_y, test_x, test_y


def _run(epochs: int, **options: object) -> cifar.CifarResult:
    recipe = CifarRecipe(**TINY, epochs=epochs)
    return train_cifar10(recipe, *_data(), torch.device("cpu"), progress=False, **options)


def _weights(result: cifar.CifarResult) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in result.model.parameters()])


@pytest.mark.parametrize(("max_steps", "epochs", "steps"), [(3, 1, 3), (4, 1, 4), (6, 2, 6)])
def test_max_steps_stops_after_that_many_optimizer_steps(
    max_steps: int, epochs: int, steps: int
) -> None:
    # 64 images in batches of 16: 4 steps per epoch, 3 epochs planned.
    result = _run(3, max_steps=max_steps)
    assert (result.steps, result.epochs) == (steps, epochs)
    assert (
        len(result.test_acc) == 1 and 0.0 <= result.final_acc <= 1.0
    )  # evaluated once, at the end
    assert len(result.epoch_seconds) == epochs


def test_without_max_steps_the_run_is_unchanged() -> None:
    plain = _run(2)
    assert plain.steps == 8 and plain.epochs == 2
    limited = _run(2, max_steps=100)  # a limit the run never reaches changes nothing
    assert torch.equal(_weights(plain), _weights(limited))
    assert plain.test_acc == limited.test_acc and plain.test_acc_plain == limited.test_acc_plain
    # The first steps of a limited run are the first steps of the full run.
    first = _run(2, max_steps=4)
    one_epoch_of_two = _run(2, eval_every_epoch=True)
    assert first.test_acc[0] == one_epoch_of_two.test_acc[0]


def test_max_steps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_steps must be at least 1"):
        _run(1, max_steps=0)


def test_synchronize_waits_for_cuda_and_mps_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CUDA and MPS branches run here without a GPU: the functions they call are
    # replaced by recorders (setattr fails if a name is misspelled or missing).
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(
        torch.cuda, "synchronize", lambda device=None: calls.append(("cuda", device))
    )
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append(("mps", None)))
    synchronize(torch.device("cpu"))
    assert calls == []
    synchronize(torch.device("cuda:1"))
    synchronize(torch.device("mps"))
    assert calls == [("cuda", torch.device("cuda:1")), ("mps", None)]


def test_autocast_model_runs_bfloat16_and_channels_last_on_the_cpu() -> None:
    # The recipe's GPU settings (bfloat16 autocast, channels-last) on the CPU: floats come out.
    net = CifarNet(widths=(8, 16, 16)).to(memory_format=torch.channels_last)
    model = AutocastModel(net, dtype=torch.bfloat16, channels_last=True).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.dtype == torch.float32 and logits.shape == (2, 10)


def test_whitening_sees_images_from_the_whole_split(monkeypatch: pytest.MonkeyPatch) -> None:
    # A split stored class by class: 5,000 blank images first, then 200 others. The whitening
    # sample must be drawn at random, not taken from the front (which would be all blank).
    train_x = torch.zeros(5_200, 3, 32, 32, dtype=torch.uint8)
    train_x[5_000:] = 255
    train_y = torch.zeros(5_200, dtype=torch.long)
    train_y[5_000:] = 1
    seen: list[torch.Tensor] = []
    original = CifarNet.init_whitening

    def spy(self: CifarNet, images: torch.Tensor, *args: object, **kwargs: object) -> None:
        seen.append(images)
        original(self, images, *args, **kwargs)

    monkeypatch.setattr(CifarNet, "init_whitening", spy)
    recipe = CifarRecipe(**TINY, epochs=1)
    train_cifar10(
        recipe, train_x, train_y, train_x[:32], train_y[:32], torch.device("cpu"),
        progress=False, max_steps=1,
    )  # fmt: skip
    (sample,) = seen
    assert len(sample) == 5_000
    bright = int((sample.flatten(1).mean(dim=1) > 0).sum())  # normalised: blank < 0 < white
    assert 100 < bright < 300  # about 5000 * 200 / 5200 = 192 of the 200 bright images


def test_the_ladder_recipes_train_other_networks_without_normalisation() -> None:
    from cnnbook.models import TutorialCNN

    plain = dict(TINY, whitening=False, normalize=False, crop_padding=0, flip=False, tta=False)
    recipe = CifarRecipe(**plain, epochs=1, network=TutorialCNN, schedule="constant")
    result = train_cifar10(recipe, *_data(), torch.device("cpu"), progress=False)
    assert isinstance(result.model.model, TutorialCNN) and result.steps == 4
    assert result.final_acc == result.test_acc_plain  # without TTA the two agree
    with pytest.raises(ValueError, match="whitening=True needs a CifarNet"):
        train_cifar10(
            CifarRecipe(**dict(plain, whitening=True), network=TutorialCNN), *_data(),
            torch.device("cpu"), progress=False,
        )  # fmt: skip
    with pytest.raises(ValueError, match="schedule must be 'one_cycle' or 'constant'"):
        train_cifar10(CifarRecipe(**TINY, schedule="cosine"), *_data(), torch.device("cpu"))


def test_the_constant_schedule_is_the_one_cycle_average(monkeypatch: pytest.MonkeyPatch) -> None:
    factors: list[float] = []
    original = torch.optim.lr_scheduler.LambdaLR

    def spy(optimizer: torch.optim.Optimizer, factor: object) -> object:
        factors.extend(factor(step) for step in range(8))  # type: ignore[operator]
        return original(optimizer, factor)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.optim.lr_scheduler, "LambdaLR", spy)
    _run(2)  # 8 steps, one-cycle
    cycle, factors[:] = list(factors), []
    train_cifar10(
        CifarRecipe(**TINY, epochs=2, schedule="constant"), *_data(), torch.device("cpu"),
        progress=False,
    )  # fmt: skip
    assert factors == pytest.approx([sum(cycle) / len(cycle)] * 8)


def test_one_cycle_average_is_the_mean_factor_and_about_0_55() -> None:
    cycle = cifar.one_cycle(351)
    mean = sum(cycle(step) for step in range(351)) / 351
    assert cifar.one_cycle_average(351) == pytest.approx(mean)
    for steps in (87, 175, 1000):
        assert cifar.one_cycle_average(steps) == pytest.approx(0.55, abs=0.002)


def test_accuracy_standard_error_and_difference_margin() -> None:
    assert cifar.accuracy_standard_error(0.5, 100) == pytest.approx(0.05)
    assert cifar.accuracy_standard_error(1.0, 10) == 0.0
    assert cifar.difference_margin(0.5, 0.5, 100) == pytest.approx(3 * 0.05 * 2**0.5)
    # Different counts: the second accuracy's standard error shrinks with its count.
    expected = 2 * (0.05**2 + 0.025**2) ** 0.5
    assert cifar.difference_margin(0.5, 0.5, 100, 400, z=2.0) == pytest.approx(expected)
    with pytest.raises(ValueError, match="count must be at least 1"):
        cifar.accuracy_standard_error(0.5, 0)
    with pytest.raises(ValueError, match=r"accuracy must lie in \[0, 1\]"):
        cifar.accuracy_standard_error(1.5, 10)


def test_describe_recipe_names_the_learning_rate_as_applied() -> None:
    constant = CifarRecipe(batch_size=128, lr=0.16, schedule="constant", bias_lr_scale=1.0)
    text = cifar.describe_recipe(constant)
    assert "constant lr 0.011 (0.55 × 0.02)" in text
    assert "BatchNorm shifts at 1× lr" in text and "Nesterov momentum 0.85" in text
    final = cifar.describe_recipe(CifarRecipe(epochs=1))
    assert "1 epoch," in final and "one-cycle lr, peak 0.75" in final


def test_recipe_changes_lists_exactly_the_settings_that_differ() -> None:
    base = CifarRecipe(network=CifarNet, batch_size=128)
    assert cifar.recipe_changes(base, base) == []
    changed = CifarRecipe(batch_size=256, momentum=0.9, network=None)
    assert cifar.recipe_changes(base, changed) == ["batch_size: 128 → 256", "momentum: 0.85 → 0.9"]
    assert cifar.recipe_changes(CifarRecipe(), CifarRecipe(weight_decay=0.0, tta=False)) == [
        "weight_decay: 0.00133 → 0",
        "tta: True → False",
    ]
