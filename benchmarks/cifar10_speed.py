"""How fast does the CIFAR-10 chapter's recipe reach a target test accuracy?

Trains :class:`cnnbook.models.CifarNet` with :func:`cnnbook.cifar.train_cifar10`
(the chapter's recipe, imported, not copied), evaluating after every epoch, and
stops at the first epoch whose test accuracy (with flip TTA) reaches the target.
It prints a readable summary and then ONE line of JSON with the time to the
target (training time only; evaluations are not counted), the epochs and the
final accuracy.

Defaults depend on the device:

* CUDA GPU: airbench94's size (widths 64-256-256, batch 1024, bfloat16,
  up to 10 epochs) on the full split, target 94% (airbench's README reports
  94.01% mean accuracy in 3.83 s on one A100 for ``legacy/airbench94.py``, 3.09 s
  with ``torch.compile``; the paper's title and the README of March 2024 gave the
  compiled script 3.29 s). One short untimed warm-up run comes first.
* CPU: a short configuration for CI (the chapter's widths 32-64-128, up to
  4 epochs on 10,000 random training images, 2,000 random test images, target
  55%) that takes well under a minute on two cores. It checks that the
  pipeline works and learns, not how good the full recipe is.

The same script runs unchanged under ``torchrun --nproc_per_node=N`` (chapter
12): each process joins the group (``nccl`` with its own GPU, ``gloo`` on the
CPU), ``--batch-size`` stays the global batch, split evenly over the N ranks,
the model trains in ``DistributedDataParallel``, and only rank 0 prints. The JSON
line reports the world size, the global batch and the batch per rank.

``--full`` runs the GPU configuration (warm-up included) on any device, and
``--max-steps N`` stops each training run after N optimizer steps: together,
``--full --max-steps 3 --device cpu`` checks on a CPU that the GPU
configuration runs. ``--device`` is checked as the book checks
``CNNBOOK_DEVICE`` (:func:`cnnbook.device.get_device`), before any data is loaded.

Usage: ``python benchmarks/cifar10_speed.py [--device cpu] [--target 0.94] ...``, or
``torchrun --standalone --nproc_per_node=2 benchmarks/cifar10_speed.py --device cpu ...``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace

import torch

from cnnbook.cifar import CifarRecipe, describe_recipe, train_cifar10
from cnnbook.data import cifar10, dataset_source, load_tensors, random_subset
from cnnbook.device import ENV_VAR as DEVICE_ENV_VAR
from cnnbook.device import describe_device, get_device
from cnnbook.distributed import DistributedContext, distributed_session

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
    parser.add_argument(
        "--max-steps", type=int, default=None, help="stop each run after N optimizer steps"
    )
    return parser.parse_args(argv)


class BenchmarkError(Exception):
    """A command-line value the benchmark cannot use; the message says which and why."""


def resolve_device(name: str | None) -> torch.device:
    """The device for ``--device NAME``, or the automatic choice, validated by ``get_device``.

    ``--device`` takes the place of ``CNNBOOK_DEVICE`` for this run, so an unknown
    name or a GPU this machine lacks is refused with the book's message (naming
    ``--device`` instead of the variable) before anything else happens.
    """
    if not name:
        return get_device()
    previous = os.environ.get(DEVICE_ENV_VAR)
    os.environ[DEVICE_ENV_VAR] = name
    try:
        return get_device()
    except (ValueError, RuntimeError) as error:
        message = (
            str(error)
            .replace(f"{DEVICE_ENV_VAR}={name.strip()!r}", f"--device {name.strip()!r}")
            .replace(f"unset {DEVICE_ENV_VAR}", "leave out --device")
            .replace(f"Unset {DEVICE_ENV_VAR}", "Leave out --device")
        )
        raise BenchmarkError(message) from error
    finally:
        if previous is None:
            del os.environ[DEVICE_ENV_VAR]
        else:
            os.environ[DEVICE_ENV_VAR] = previous


def settings(args: argparse.Namespace, device_type: str) -> dict:
    """The run's settings: the device type's defaults, overridden by the command line.

    A CUDA device, or ``--full`` on any device, gets the GPU configuration:
    ``GPU_DEFAULTS``, an untimed warm-up run (unless ``--no-warmup``) and
    ``cudnn.benchmark``. Taking the device type rather than a device lets the
    tests check the ``"cuda"`` choice on a machine without a GPU.
    """
    gpu_configuration = device_type == "cuda" or args.full
    chosen = dict(GPU_DEFAULTS if gpu_configuration else CPU_DEFAULTS)
    for key in chosen:
        value = getattr(args, key)
        if value is not None:
            chosen[key] = tuple(value) if key == "widths" else value
    if not 0.0 < chosen["target"] <= 1.0:
        raise BenchmarkError(f"--target must be a fraction in (0, 1], got {chosen['target']}.")
    if args.max_steps is not None and args.max_steps < 1:
        raise BenchmarkError(f"--max-steps must be at least 1, got {args.max_steps}.")
    chosen["gpu_configuration"] = gpu_configuration
    chosen["warmup"] = gpu_configuration and not args.no_warmup
    chosen["max_steps"] = args.max_steps
    return chosen


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    try:  # every check on the command line comes before the (slow) data loading
        device = resolve_device(args.device)
        config = settings(args, device.type)
    except BenchmarkError as error:
        raise SystemExit(f"cifar10_speed.py: error: {error}") from None
    # Under torchrun: join the process group (each rank on its own GPU, gloo on the CPU);
    # run alone: a single-process context, and nothing changes.
    with distributed_session(device) as context:
        if config["batch_size"] % context.world_size:
            raise SystemExit(
                f"cifar10_speed.py: error: --batch-size {config['batch_size']} is the global "
                f"batch and must split evenly over the {context.world_size} processes."
            )
        return run(args, config, context)


def run(args: argparse.Namespace, config: dict, context: DistributedContext) -> dict:
    """Load the data, train (after an optional warm-up) and report; rank 0 prints."""
    device = context.device
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
    if config["gpu_configuration"]:
        torch.backends.cudnn.benchmark = True  # no effect on a CPU
    if config["warmup"]:  # compile kernels and pick cuDNN algorithms, untimed
        warmup = replace(recipe, epochs=1)
        n = 4 * recipe.batch_size
        train_cifar10(
            warmup, train_images[:n], train_labels[:n], test_images, test_labels, device,
            progress=False, max_steps=config["max_steps"], distributed=context,
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
        max_steps=config["max_steps"],
        distributed=context,
    )
    report = {
        "device": describe_device(device),
        "data_source": source,
        "train_images": int(train_images.shape[0]),
        "test_images": int(test_images.shape[0]),
        "widths": list(recipe.widths),
        "batch_size": recipe.batch_size,
        "world_size": context.world_size,
        "global_batch_size": recipe.batch_size,
        "batch_per_rank": recipe.batch_size // context.world_size,
        "backend": context.backend,
        "max_epochs": recipe.epochs,
        "max_steps": config["max_steps"],
        "steps": result.steps,
        "gpu_configuration": config["gpu_configuration"],
        "warmup": config["warmup"],
        "target_accuracy": config["target"],
        "reached": result.reached_at is not None,
        "time_to_target_s": None if result.reached_at is None else round(result.reached_at, 3),
        "epochs": result.epochs,
        "final_accuracy": round(result.final_acc, 4),
        "accuracy_per_epoch": [round(a, 4) for a in result.test_acc],
        "train_seconds": round(result.train_seconds, 3),
        "wall_seconds": round(time.perf_counter() - started, 3),
    }
    if not context.is_main:
        return report
    print(f"Device: {report['device']}")
    print(f"Data: {source}; {report['train_images']} train / {report['test_images']} test images")
    print(f"Recipe: {describe_recipe(recipe)}")
    if context.world_size > 1:
        print(
            f"Data parallel: {context.world_size} processes ({context.backend}), global batch "
            f"{recipe.batch_size} = {context.world_size} x {report['batch_per_rank']}"
        )
    print(f"Test accuracy per epoch (flip TTA): {report['accuracy_per_epoch']}")
    if report["reached"]:
        print(
            f"Reached {config['target']:.2%} after {result.epochs} epochs in "
            f"{result.reached_at:.2f} s of training (final accuracy {result.final_acc:.2%})."
        )
    elif config["max_steps"] is not None and result.steps >= config["max_steps"]:
        print(
            f"Stopped after {result.steps} optimizer steps (--max-steps); final accuracy "
            f"{result.final_acc:.2%}. A check that the configuration runs, not a measurement."
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
