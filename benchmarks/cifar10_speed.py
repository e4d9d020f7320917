"""How fast does the CIFAR-10 chapter's recipe reach a target test accuracy?

Trains :class:`cnnbook.models.CifarNet` with :func:`cnnbook.cifar.train_cifar10`
(the chapter's recipe, imported, not copied), evaluating after every epoch, and
stops at the first epoch whose test accuracy (with flip TTA) reaches the target.
It prints a readable summary and then ONE line of JSON with the time to the
target (training time only; evaluations are not counted), the epochs and the
final accuracy.

Defaults depend on the device:

* CUDA GPU: airbench94's size (widths 64-256-256, batch 1024, bfloat16,
  up to 10 epochs) on the full split, target 94% (airbench94 reports 94.01% in
  3.29 s on an A100). One short untimed warm-up run comes first.
* CPU: a short configuration for CI (the chapter's widths 32-64-128, up to
  4 epochs on 10,000 random training images, 2,000 random test images, target
  55%) that takes well under a minute on two cores. It checks that the
  pipeline works and learns, not how good the full recipe is.

Usage: ``python benchmarks/cifar10_speed.py [--device cpu] [--target 0.94] ...``
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from cnnbook.cifar import CifarRecipe, describe_recipe, train_cifar10
from cnnbook.data import cifar10, dataset_source, load_tensors, random_subset
from cnnbook.device import describe_device, get_device

GPU_DEFAULTS = {
    "widths": (64, 256, 256),
    "batch_size": 1024,
    "epochs": 10,
    "target": 0.94,
    "train_subset": None,
    "test_subset": None,
}
CPU_DEFAULTS = {
    "widths": (32, 64, 128),
    "batch_size": 256,
    "epochs": 4,
    "target": 0.55,
    "train_subset": 10000,
    "test_subset": 2000,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--target", type=float, default=None, help="target test accuracy (0-1)")
    parser.add_argument("--epochs", type=int, default=None, help="maximum number of epochs")
    parser.add_argument("--widths", type=int, nargs=3, default=None, help="CifarNet widths")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--train-subset", type=int, default=None, help="N random training images")
    parser.add_argument("--test-subset", type=int, default=None, help="N random test images")
    parser.add_argument("--full", action="store_true", help="use the GPU defaults on any device")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed GPU warm-up")
    return parser.parse_args(argv)


def settings(args: argparse.Namespace, device: torch.device) -> dict:
    """The run's settings: the device's defaults, overridden by the command line."""
    chosen = dict(GPU_DEFAULTS if device.type == "cuda" or args.full else CPU_DEFAULTS)
    for key in chosen:
        value = getattr(args, key)
        if value is not None:
            chosen[key] = tuple(value) if key == "widths" else value
    if not 0.0 < chosen["target"] <= 1.0:
        raise ValueError(f"--target must be a fraction in (0, 1], got {chosen['target']}.")
    return chosen


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device) if args.device else get_device()
    config = settings(args, device)
    started = time.perf_counter()
    train_images, train_labels = load_tensors("cifar10", train=True)
    test_images, test_labels = load_tensors("cifar10", train=False)
    source = dataset_source(cifar10(train=False, download=False, verbose=False))
    if config["train_subset"]:  # random, not the first N: the JPEG copy is sorted by class
        train_images, train_labels = random_subset(
            train_images, train_labels, config["train_subset"], args.seed
        )
    if config["test_subset"]:
        test_images, test_labels = random_subset(
            test_images, test_labels, config["test_subset"], args.seed
        )
    recipe = CifarRecipe(
        widths=config["widths"],
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        autocast="bf16",
        seed=args.seed,
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        if not args.no_warmup:  # compile kernels and pick cuDNN algorithms, untimed
            warmup = CifarRecipe(**{**recipe.as_dict(), "epochs": 1})
            n = 4 * recipe.batch_size
            train_cifar10(
                warmup, train_images[:n], train_labels[:n], test_images, test_labels, device,
                progress=False,
            )  # fmt: skip
    result = train_cifar10(
        recipe,
        train_images,
        train_labels,
        test_images,
        test_labels,
        device,
        target_acc=config["target"],
        progress=False,
    )
    report = {
        "device": describe_device(device),
        "data_source": source,
        "train_images": int(train_images.shape[0]),
        "test_images": int(test_images.shape[0]),
        "widths": list(recipe.widths),
        "batch_size": recipe.batch_size,
        "max_epochs": recipe.epochs,
        "target_accuracy": config["target"],
        "reached": result.reached_at is not None,
        "time_to_target_s": None if result.reached_at is None else round(result.reached_at, 3),
        "epochs": result.epochs,
        "final_accuracy": round(result.final_acc, 4),
        "accuracy_per_epoch": [round(a, 4) for a in result.test_acc],
        "train_seconds": round(result.train_seconds, 3),
        "wall_seconds": round(time.perf_counter() - started, 3),
    }
    print(f"Device: {report['device']}")
    print(f"Data: {source}; {report['train_images']} train / {report['test_images']} test images")
    print(f"Recipe: {describe_recipe(recipe)}")
    print(f"Test accuracy per epoch (flip TTA): {report['accuracy_per_epoch']}")
    if report["reached"]:
        print(
            f"Reached {config['target']:.2%} after {result.epochs} epochs in "
            f"{result.reached_at:.2f} s of training (final accuracy {result.final_acc:.2%})."
        )
    else:
        print(
            f"Did not reach {config['target']:.2%} in {result.epochs} epochs "
            f"({result.train_seconds:.2f} s of training; final accuracy {result.final_acc:.2%})."
        )
    print(json.dumps(report, sort_keys=True))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
