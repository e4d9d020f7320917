"""The networks the chapters build, train and compare.

Sections, in the order the book introduces them: the tutorial CNNs ("Building a
CNN", MNIST), LeNet and AlexNet, the CIFAR-10 networks, the character RNN and
the character language model.
"""

from __future__ import annotations

import torch
from torch import nn


def _check_flat_features(x: torch.Tensor, expected: int, model_name: str, input_hint: str) -> None:
    """Raise a clear error when the flattened features do not fit the first Linear layer."""
    if x.shape[1] != expected:
        raise ValueError(
            f"{model_name}: the first Linear layer expects {expected} features per example, "
            f"but the convolutional part produced {x.shape[1]} (feature map {tuple(x.shape)}). "
            f"This model takes inputs of shape {input_hint}; resize the input or change the Linear layer."
        )


# --- Building a CNN and MNIST ---------------------------------------------------------------


class TutorialCNN(nn.Module):
    """The tutorial network of "Building a CNN", for 3x32x32 images (CIFAR-10).

    ``Conv2d(3, 18, 3, padding=1)`` → ReLU → ``MaxPool2d(2, 2)`` → flatten →
    ``Linear(18*16*16, 64)`` → ReLU → ``Linear(64, 10)``. Sizes: (3, 32, 32) →
    (18, 32, 32) → (18, 16, 16) → 4608 → 64 → 10. It is the network of
    tutorialspoint's PyTorch CNN tutorial, not the one of the official PyTorch
    tutorial "Training a classifier" (that is :class:`PyTorchTutorialNet`).

    Introduced in chapter 06.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 18, kernel_size=3, stride=1, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(18 * 16 * 16, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.flatten(x, 1)
        _check_flat_features(x, self.fc1.in_features, "TutorialCNN", "(N, 3, 32, 32)")
        x = torch.relu(self.fc1(x))
        return self.fc2(x)


class MnistCNN(nn.Module):
    """The course's MNIST model: two conv-ReLU-pool blocks and one Linear layer.

    conv(1→32, 3, padding 1) → ReLU → MaxPool(2) → conv(32→64, 3, padding 1)
    → ReLU → MaxPool(2) → ``Linear(7*7*64, 10)``. Sizes: (1, 28, 28) →
    (32, 14, 14) → (64, 7, 7) → 3136 → 10.

    Introduced in chapter 06.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.layer1 = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.layer2 = nn.Sequential(
            nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.fc = nn.Linear(7 * 7 * 64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.layer2(self.layer1(x)), 1)
        _check_flat_features(x, self.fc.in_features, "MnistCNN", "(N, 1, 28, 28)")
        return self.fc(x)


class MnistBNCNN(nn.Module):
    """The MNIST chapter's improved model: three conv-BatchNorm-ReLU-pool blocks.

    Each block is ``Conv2d(k=3, padding=1, bias=False)`` → ``BatchNorm2d`` → ReLU →
    ``MaxPool2d(2)``, with 16, 32 and 64 channels; then ``Linear(64*3*3, 10)``.
    Sizes: (1, 28, 28) → (16, 14, 14) → (32, 7, 7) → (64, 3, 3) → 576 → 10. About
    half the multiply-adds of :class:`MnistCNN` per image and 29,178 parameters;
    BatchNorm lets it train with the large learning rates of a one-cycle schedule.

    Introduced in chapter 07.
    """

    def __init__(
        self, num_classes: int = 10, channels: tuple[int, int, int] = (16, 32, 64)
    ) -> None:
        super().__init__()
        if len(channels) != 3 or min(channels) < 1:
            raise ValueError(f"channels must be three positive integers, got {channels}.")
        blocks, in_channels = [], 1
        for out_channels in channels:
            blocks += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels[-1] * 3 * 3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        _check_flat_features(x, self.fc.in_features, "MnistBNCNN", "(N, 1, 28, 28)")
        return self.fc(x)


# --- LeNet and AlexNet ---


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998) for 1x28x28 digits, as published or in its modern form.

    ``variant="classic"``: C1 ``Conv2d(1, 6, 5, padding=2)`` (the padding turns
    28x28 into the paper's 32x32) → tanh → S2 ``AvgPool2d(2)`` → C3
    ``Conv2d(6, 16, 5)`` → tanh → S4 ``AvgPool2d(2)`` → C5 (120 units over the
    whole 16x5x5 map, written as ``Linear(400, 120)``) → tanh → F6 ``Linear(120, 84)``
    → tanh → ``Linear(84, 10)``. ``variant="modern"`` uses ReLU and
    ``MaxPool2d(2)`` instead. Both have 61,706 parameters. ``activation`` overrides
    the classic activation (``"tanh"`` or ``"sigmoid"``).

    Introduced in chapter 09.
    """

    VARIANTS = ("classic", "modern")

    def __init__(
        self, variant: str = "classic", num_classes: int = 10, activation: str | None = None
    ) -> None:
        super().__init__()
        if variant not in self.VARIANTS:
            raise ValueError(f"variant must be one of {self.VARIANTS}, got {variant!r}.")
        activations = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU}
        name = activation or ("tanh" if variant == "classic" else "relu")
        if name not in activations:
            raise ValueError(f"activation must be one of {sorted(activations)}, got {name!r}.")
        act = activations[name]
        pool = nn.AvgPool2d if variant == "classic" else nn.MaxPool2d
        self.variant = variant
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2), act(), pool(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), act(), pool(kernel_size=2, stride=2),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), act(),
            nn.Linear(120, 84), act(),
            nn.Linear(84, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        _check_flat_features(x, self.classifier[0].in_features, "LeNet5", "(N, 1, 28, 28)")
        return self.classifier(x)


class AlexNet(nn.Module):
    """AlexNet for 3x224x224 ImageNet images: five convolutions and three fully connected layers.

    ``variant="torchvision"`` is layer for layer ``torchvision.models.alexnet``
    (64-192-384-256-256 filters, no LRN, 61,100,840 parameters for 1000 classes),
    with the same module names, so its ``state_dict`` loads into this class.
    ``variant="original"`` is the network of Krizhevsky, Sutskever and Hinton
    (2012): 96-256-384-384-256 filters, local response normalization after the
    first two convolutions, and ``groups=2`` in conv2, conv4 and conv5 where the
    two GPUs did not exchange data (60,965,224 parameters). Both use overlapping
    max pooling (3x3, stride 2) and dropout before the first two Linear layers.

    Introduced in chapter 09.
    """

    VARIANTS = ("torchvision", "original")

    def __init__(
        self, num_classes: int = 1000, variant: str = "torchvision", dropout: float = 0.5
    ) -> None:
        super().__init__()
        if variant not in self.VARIANTS:
            raise ValueError(f"variant must be one of {self.VARIANTS}, got {variant!r}.")
        self.variant = variant
        if variant == "torchvision":
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
            )  # fmt: skip
        else:
            # The paper's alpha is 1e-4 for a sum over 5 maps; PyTorch divides alpha by size.
            def lrn() -> nn.LocalResponseNorm:
                return nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0)

            self.features = nn.Sequential(
                nn.Conv2d(3, 96, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
                lrn(), nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2), nn.ReLU(inplace=True),
                lrn(), nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2), nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2), nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
            )  # fmt: skip
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"AlexNet expects images of shape (N, 3, H, W), got {tuple(x.shape)}.")
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class MiniAlexNet(nn.Module):
    """AlexNet's design scaled down to 28x28 digits (or 32x32 colour images).

    Five convolutions (5x5 then 3x3) with ReLU, overlapping 3x3/stride-2 max
    pooling after conv1, conv2 and conv5, local response normalization after
    the first two poolings (the order of Caffe's reference AlexNet, cheaper than
    normalising before pooling), and a dropout classifier of three Linear layers. Stride 1
    and fewer filters (``width`` times 16-32-48-48-32) instead of stride 4 and
    96-384 filters: the input is 64 times smaller and the budget a laptop CPU.
    Sizes for 1x28x28: 28 → 13 → 6 → 2, so the classifier sees ``32*width*2*2``
    features; ``image_size=32`` gives 32 → 15 → 7 → 3.

    Introduced in chapter 09.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        width: int = 1,
        dropout: float = 0.5,
        image_size: int = 28,
    ) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be at least 1, got {width}.")
        side = image_size
        for _ in range(3):  # three 3x3/stride-2 poolings; the convolutions keep the size
            side = (side - 3) // 2 + 1
        if side < 1:
            raise ValueError(
                f"image_size must be at least 15 for three poolings, got {image_size}."
            )
        self.image_size = image_size
        c1, c2, c3, c4, c5 = (width * c for c in (16, 32, 48, 48, 32))

        def lrn() -> nn.LocalResponseNorm:
            return nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0)

        # LRN after pooling, as in Caffe's reference AlexNet: 4 times fewer values to normalise.
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2), lrn(),
            nn.Conv2d(c1, c2, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2), lrn(),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(c5 * side * side, 256), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(256, 256), nn.ReLU(inplace=True),
            nn.Linear(256, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        _check_flat_features(
            x,
            self.classifier[1].in_features,
            "MiniAlexNet",
            f"(N, C, {self.image_size}, {self.image_size})",
        )
        return self.classifier(x)


# --- CIFAR-10 networks ---


class PyTorchTutorialNet(nn.Module):
    """The network of the official PyTorch tutorial "Training a classifier" (CIFAR-10).

    Source: https://docs.pytorch.org/tutorials/beginner/blitz/cifar10_tutorial.html
    (class ``Net``), layer for layer: ``Conv2d(3, 6, 5)`` → ReLU → ``MaxPool2d(2, 2)``
    → ``Conv2d(6, 16, 5)`` → ReLU → ``MaxPool2d(2, 2)`` → flatten →
    ``Linear(400, 120)`` → ReLU → ``Linear(120, 84)`` → ReLU → ``Linear(84, 10)``.
    Sizes: (3, 32, 32) → (6, 28, 28) → (6, 14, 14) → (16, 10, 10) → (16, 5, 5) →
    400 → 120 → 84 → 10; 62,006 parameters. The tutorial trains it with
    ``CrossEntropyLoss`` and SGD (lr 0.001, momentum 0.9) on batches of 4 for two
    epochs, with inputs normalised by mean 0.5 and std 0.5 per channel.

    Introduced in chapter 11.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        _check_flat_features(x, self.fc1.in_features, "PyTorchTutorialNet", "(N, 3, 32, 32)")
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class TutorialBNCNN(nn.Module):
    """:class:`TutorialCNN` with batch normalization after its convolution and its hidden layer.

    ``Conv2d(3, 18, 3, padding=1)`` → ``BatchNorm2d(18)`` → ReLU → ``MaxPool2d(2)``
    → flatten → ``Linear(4608, 64)`` → ``BatchNorm1d(64)`` → ReLU → ``Linear(64, 10)``.
    The convolution and the hidden layer drop their biases, which BatchNorm's
    shift makes redundant.

    Introduced in chapter 11.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 18, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(18)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(18 * 16 * 16, 64, bias=False)
        self.bn2 = nn.BatchNorm1d(64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.flatten(x, 1)
        _check_flat_features(x, self.fc1.in_features, "TutorialBNCNN", "(N, 3, 32, 32)")
        return self.fc2(torch.relu(self.bn2(self.fc1(x))))


class CifarConvGroup(nn.Sequential):
    """One stage of :class:`CifarNet`: conv → max-pool 2 → BN → GELU → conv → BN → GELU.

    Pooling right after the first convolution halves the size before the
    BatchNorm and activation, which saves work. The BatchNorm layers keep their
    scale fixed at 1 (only the shift is learned) and use ``momentum`` for their
    running statistics, as in airbench.

    Introduced in chapter 11.
    """

    def __init__(self, in_channels: int, out_channels: int, momentum: float = 0.4) -> None:
        def norm() -> nn.BatchNorm2d:
            layer = nn.BatchNorm2d(out_channels, eps=1e-12, momentum=momentum)
            layer.weight.requires_grad_(False)
            return layer

        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            norm(),
            nn.GELU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            norm(),
            nn.GELU(),
        )


class CifarNet(nn.Module):
    """A fast CIFAR-10 network in the style of Keller Jordan's airbench.

    A 2x2 "whitening" convolution (3 → 24 channels, no padding: 32 → 31 pixels)
    and GELU, then three :class:`CifarConvGroup` stages of ``widths`` channels
    (31 → 15 → 7 → 3 pixels), a 3x3 max-pool to one value per channel, and a
    ``Linear(widths[-1], num_classes)`` without bias whose output is multiplied
    by ``logit_scale``. airbench94 uses ``widths=(64, 256, 256)``; a CPU wants
    smaller ones. :meth:`init_whitening` sets the first layer from the data.

    Introduced in chapter 11.
    """

    def __init__(
        self,
        widths: tuple[int, int, int] = (64, 256, 256),
        num_classes: int = 10,
        logit_scale: float = 1 / 9,
        bn_momentum: float = 0.4,
    ) -> None:
        super().__init__()
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"widths must be three positive channel counts, got {widths}.")
        self.widths = tuple(widths)
        self.logit_scale = logit_scale
        self.whiten = nn.Conv2d(3, 24, kernel_size=2, padding=0, bias=True)
        self.act = nn.GELU()
        self.layers = nn.Sequential(
            CifarConvGroup(24, widths[0], bn_momentum),
            CifarConvGroup(widths[0], widths[1], bn_momentum),
            CifarConvGroup(widths[1], widths[2], bn_momentum),
        )
        self.pool = nn.MaxPool2d(3)
        self.head = nn.Linear(widths[2], num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, 32, 32):
            raise ValueError(
                f"CifarNet expects inputs of shape (N, 3, 32, 32), got {tuple(x.shape)}."
            )
        # The 2x2 first layer is cheap: keep it in float32 even under bfloat16 autocast, where
        # the gradient of its bias takes a very slow path on CPUs (oneDNN, channels-last).
        with torch.autocast(x.device.type, enabled=False):
            x = self.act(self.whiten(x.float()))
        x = self.pool(self.layers(x))
        return self.head(torch.flatten(x, 1)) * self.logit_scale

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the 2x2 first layer to whiten image patches (airbench's initialisation).

        ``images`` is a float batch ``(N, 3, 32, 32)`` as the network sees it
        (normalised). The 12 values of every 2x2 patch are decorrelated: the
        filters are the eigenvectors of the patch covariance divided by the
        square root of their eigenvalue, and their negatives (24 filters).
        Freeze the weights afterwards (``whiten.weight.requires_grad_(False)``)
        to keep them.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}.")
        patches = images.float().unfold(2, 2, 1).unfold(3, 2, 1)  # N, 3, H-1, W-1, 2, 2
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
        patches = patches - patches.mean(dim=0)
        covariance = patches.T @ patches / patches.shape[0]
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps).view(-1, 1)).view(12, 3, 2, 2)
        weight = torch.cat([filters, -filters]).to(self.whiten.weight)
        self.whiten.weight.copy_(weight)
        self.whiten.bias.zero_()


# --- Recurrent networks ---


class CharRNN(nn.Module):
    """A character-level recurrent network: one-hot characters → RNN/LSTM/GRU → Linear to logits.

    ``forward(x, hidden=None)`` takes character indices of shape (N, L) (``int64``)
    or one-hot vectors of shape (N, L, vocab_size), and returns ``(logits, hidden)``:
    logits of shape (N, L, vocab_size), one score per character of the vocabulary
    at every step, and the final hidden state (for an LSTM the pair ``(h_n, c_n)``),
    each of shape (num_layers, N, hidden_size). ``cell`` is ``"rnn"``, ``"lstm"``
    or ``"gru"``; the layers are ``batch_first``.

    Introduced in chapter 15.
    """

    CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

    def __init__(
        self, vocab_size: int, hidden_size: int = 32, num_layers: int = 1, cell: str = "rnn"
    ) -> None:
        super().__init__()
        if cell not in self.CELLS:
            raise ValueError(f"cell must be one of {sorted(self.CELLS)}, got {cell!r}.")
        if vocab_size < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(
                "vocab_size, hidden_size and num_layers must be positive, got "
                f"{vocab_size}, {hidden_size}, {num_layers}."
            )
        self.vocab_size = vocab_size
        self.cell = cell
        self.rnn = self.CELLS[cell](
            vocab_size, hidden_size, num_layers=num_layers, batch_first=True
        )
        self.fc = nn.Linear(hidden_size, vocab_size)

    def forward(
        self,
        x: torch.Tensor,
        hidden: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        if x.dim() == 2 and not x.is_floating_point():
            x = nn.functional.one_hot(x, self.vocab_size).float()
        if x.dim() != 3 or x.shape[-1] != self.vocab_size:
            raise ValueError(
                f"CharRNN expects indices of shape (N, L) or one-hot vectors of shape "
                f"(N, L, {self.vocab_size}), got {tuple(x.shape)} ({x.dtype})."
            )
        outputs, hidden = self.rnn(x, hidden)
        return self.fc(outputs), hidden


class CharLanguageModel(nn.Module):
    """A character language model: ``nn.Embedding`` → LSTM (or GRU) → ``Linear`` to logits.

    ``forward(x, hidden=None)`` takes character indices of shape (N, L) and
    returns ``(logits, hidden)`` with logits of shape (N, L, vocab_size) and the
    final hidden state (for an LSTM the pair ``(h_n, c_n)``), each of shape
    (num_layers, N, hidden_size), ready to be passed to the next call. The
    embedding replaces :class:`CharRNN`'s one-hot input: it looks up a learned
    vector of ``embedding_dim`` numbers per character, which equals a linear layer
    applied to the one-hot vector. ``cell`` is ``"lstm"`` or ``"gru"``.

    Introduced in chapter 18.
    """

    CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 1,
        cell: str = "lstm",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in self.CELLS:
            raise ValueError(f"cell must be one of {sorted(self.CELLS)}, got {cell!r}.")
        if min(vocab_size, embedding_dim, hidden_size, num_layers) < 1:
            raise ValueError(
                "vocab_size, embedding_dim, hidden_size and num_layers must be positive, got "
                f"{vocab_size}, {embedding_dim}, {hidden_size}, {num_layers}."
            )
        self.vocab_size = vocab_size
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = self.CELLS[cell](
            embedding_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.fc = nn.Linear(hidden_size, vocab_size)

    def forward(
        self,
        x: torch.Tensor,
        hidden: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        if x.dim() != 2 or x.is_floating_point():
            raise ValueError(
                "CharLanguageModel expects character indices of shape (N, L) (int64), got "
                f"{tuple(x.shape)} ({x.dtype}); encode the text with cnnbook.text.encode."
            )
        outputs, hidden = self.rnn(self.embedding(x), hidden)
        return self.fc(outputs), hidden
