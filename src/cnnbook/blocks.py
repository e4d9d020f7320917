"""The building blocks of modern CNNs, and the small networks chapter 10 builds from them.

Between AlexNet (2012) and the ResNets (2016) a handful of blocks changed how
convolutional networks are built: 1×1 convolutions and global average pooling
(Network in Network), stacks of 3×3 convolutions (VGG), batch normalisation,
and residual connections. This module holds each of them as a small, readable
piece (batch normalisation written out from scratch, next to PyTorch's
``nn.BatchNorm2d``), the networks the chapter trains with them
(:class:`SmallVGG`, :class:`SmallNiN`, :class:`DeepConvNet` in a plain and a
residual form, :class:`SmallResNet`), the initialisation :func:`he_init_`,
and two measuring tools: :func:`receptive_field` and :func:`layer_gradient_norms`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r}).")
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")


def _check_images(x: torch.Tensor, channels: int, name: str) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"{name} expects a batch of shape (N, {channels}, H, W), got {tuple(x.shape)}; "
            "add a batch dimension with x.unsqueeze(0) or check the number of channels."
        )


def receptive_field(layers: Sequence[tuple[int, int]]) -> int:
    """The receptive field (in input pixels) of one output unit of a stack of layers.

    ``layers`` lists ``(kernel_size, stride)`` for every convolution or pooling
    layer, first layer first. Each layer widens the field by ``(kernel_size - 1)``
    times the distance between neighbouring units of its input, in input pixels:
    ``r_out = r_in + (k - 1) j_in`` and ``j_out = j_in s``, starting from
    ``r = j = 1``. Two 3×3 convolutions see 5×5 pixels, three see 7×7.
    Introduced in chapter 10.
    """
    field, jump = 1, 1
    for index, layer in enumerate(layers):
        if len(layer) != 2:
            raise ValueError(
                f"layer {index} is {layer!r}; give each layer as (kernel_size, stride)."
            )
        kernel_size, stride = layer
        _check_positive(kernel_size=kernel_size, stride=stride)
        field += (kernel_size - 1) * jump
        jump *= stride
    return field


def vgg_block(
    in_channels: int, out_channels: int, num_convs: int, batch_norm: bool = False
) -> nn.Sequential:
    """A VGG block: ``num_convs`` 3×3 convolutions (padding 1) with ReLU, then 2×2 max pooling.

    The convolutions keep the height and width, the pooling halves them, and the
    first convolution changes the number of channels. With ``batch_norm=True``
    each convolution is followed by ``nn.BatchNorm2d`` (and has no bias, which
    the BatchNorm shift replaces), as in the later VGG variants. Simonyan and
    Zisserman built VGG-16 and VGG-19 from five such blocks. Introduced in chapter 10.
    """
    _check_positive(in_channels=in_channels, out_channels=out_channels, num_convs=num_convs)
    layers: list[nn.Module] = []
    channels = in_channels
    for _ in range(num_convs):
        layers.append(nn.Conv2d(channels, out_channels, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
        channels = out_channels
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def nin_block(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0
) -> nn.Sequential:
    """A Network-in-Network block: one convolution, then two 1×1 convolutions, each with ReLU.

    The 1×1 convolutions act as a small fully connected network applied at every
    pixel (the "micro network" of Lin, Chen and Yan), mixing the channels
    without looking at neighbours. Introduced in chapter 10.
    """
    _check_positive(
        in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size, stride=stride
    )
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=1),
        nn.ReLU(inplace=True),
    )


def gap_classifier(in_channels: int, num_classes: int) -> nn.Sequential:
    """A classifier head: global average pooling, then one ``Linear(in_channels, num_classes)``.

    ``nn.AdaptiveAvgPool2d(1)`` averages each feature map to one number, whatever
    its height and width, so the head has ``(in_channels + 1) * num_classes``
    parameters and the network before it may take images of any size. This is
    the head of GoogLeNet and ResNet. Introduced in chapter 10.
    """
    _check_positive(in_channels=in_channels, num_classes=num_classes)
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes))


class SmallNiN(nn.Module):
    """A small Network in Network: three NiN blocks, the last one with one channel per class.

    ``nin_block(in, 32, 5, padding=2)`` → max-pool 2 → ``nin_block(32, 64, 3,
    padding=1)`` → max-pool 2 → ``nin_block(64, num_classes, 3, padding=1)`` →
    global average pooling: each of the last block's maps is the evidence for one
    class, and its average is that class's logit. There is no fully connected
    layer at all, and any image of at least 4×4 pixels gives ``num_classes``
    logits. Introduced in chapter 10.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        _check_positive(in_channels=in_channels, num_classes=num_classes)
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nin_block(in_channels, 32, 5, padding=2),
            nn.MaxPool2d(2),
            nin_block(32, 64, 3, padding=1),
            nn.MaxPool2d(2),
        )
        # NiN's last block ends in ReLU as well: the logits are averages of non-negative maps.
        self.classifier = nin_block(64, num_classes, 3, padding=1)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.in_channels, "SmallNiN")
        if min(x.shape[2:]) < 4:
            raise ValueError(
                f"SmallNiN needs images of at least 4x4 pixels (two 2x2 poolings), got "
                f"{tuple(x.shape[2:])}."
            )
        return self.pool(self.classifier(self.features(x)))


class SmallVGG(nn.Module):
    """A small VGG-style network: VGG blocks of 3×3 convolutions, then ``flatten`` and one linear layer.

    ``channels`` gives the output channels of each :func:`vgg_block`, each with
    ``convs_per_block`` convolutions and a 2×2 max pooling; ``batch_norm`` puts
    ``nn.BatchNorm2d`` after every convolution. The head, as in VGG, is fully
    connected, so the network takes square images of ``image_size`` pixels
    (divisible by ``2 ** len(channels)``). Chapter 10 trains it with and without
    BatchNorm to see which learning rates each tolerates. Introduced in chapter 10.
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 32),
        convs_per_block: int = 2,
        batch_norm: bool = False,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
    ) -> None:
        super().__init__()
        if len(channels) == 0:
            raise ValueError("channels must list at least one block's channel count.")
        _check_positive(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
        if image_size % 2 ** len(channels):
            raise ValueError(
                f"image_size {image_size} is not divisible by {2 ** len(channels)}: each of the "
                f"{len(channels)} blocks halves it. Pad or crop the images, or use fewer blocks."
            )
        self.in_channels, self.image_size = in_channels, image_size
        blocks, previous = [], in_channels
        for out_channels in channels:
            blocks.append(vgg_block(previous, out_channels, convs_per_block, batch_norm))
            previous = out_channels
        self.features = nn.Sequential(*blocks)
        size = image_size // 2 ** len(channels)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(previous * size * size, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.in_channels, "SmallVGG")
        if tuple(x.shape[2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"SmallVGG was built for {self.image_size}x{self.image_size} images, got "
                f"{tuple(x.shape[2:])}; pass image_size= when you build it."
            )
        return self.classifier(self.features(x))


class BatchNorm2dScratch(nn.Module):
    """Batch normalisation for (N, C, H, W) batches, written out; it computes what ``nn.BatchNorm2d`` does.

    In training mode every channel is normalised with the mean and the (biased)
    variance of its values in the batch, over the N images and all H×W positions,
    then scaled by ``weight`` and shifted by ``bias`` (both learned). The batch
    statistics also update the running estimates, ``running = (1 - momentum) *
    running + momentum * batch``, where the running variance uses the unbiased
    batch variance, as PyTorch does. In evaluation mode (``model.eval()``) the
    running estimates replace the batch statistics, so a prediction no longer
    depends on the other images of the batch. Introduced in chapter 10.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        _check_positive(num_features=num_features)
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}.")
        if not 0 < momentum <= 1:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}.")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.num_features, "BatchNorm2dScratch")
        if self.training:
            count = x.numel() // x.shape[1]  # values per channel: N * H * W
            if count < 2:
                raise ValueError(
                    "BatchNorm2dScratch in training mode needs more than one value per channel "
                    f"to estimate a variance, got a batch of shape {tuple(x.shape)}."
                )
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), unbiased=False)
            with torch.no_grad():
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * var * count / (count - 1))
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + self.eps)
        return self.weight.view(1, -1, 1, 1) * x_hat + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class ResidualBlock(nn.Module):
    """A basic ResNet block: two 3×3 convolutions, and the input added back before the last ReLU.

    ``out = relu(F(x) + shortcut(x))`` with ``F = conv3x3(stride) → BN → ReLU →
    conv3x3 → BN``: the original, post-activation design of He et al. (2016),
    where the ReLU after the addition still gates the gradient of the shortcut
    (the pre-activation design of their "Identity Mappings" paper moves it into
    ``F``). When the block changes the shape (``stride > 1`` or other channel
    counts), the shortcut is a 1×1 convolution with that stride (and BN), the
    *projection* (the paper's option B; its CIFAR-10 networks used option A,
    zero-padded channels without parameters); otherwise it is the identity. ``batch_norm=False`` leaves
    out the BatchNorm layers (and gives the convolutions biases);
    ``residual=False`` leaves out the shortcut, which gives the *plain* block of
    the same depth and width. Introduced in chapter 10.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        batch_norm: bool = True,
        residual: bool = True,
    ) -> None:
        super().__init__()
        _check_positive(in_channels=in_channels, out_channels=out_channels, stride=stride)

        def norm(channels: int) -> nn.Module:
            return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()

        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=not batch_norm),
            norm(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=not batch_norm),
            norm(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if residual and (stride != 1 or in_channels != out_channels):
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=not batch_norm),
                norm(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.residual:
            out = out + self.shortcut(x)
        return torch.relu(out)


class DeepConvNet(nn.Module):
    """A deep, narrow network of :class:`ResidualBlock` s, with or without the shortcuts.

    A 3×3 stem convolution (``in_channels`` → ``width``, stride ``stem_stride``,
    padding 1) with ReLU, ``num_blocks`` blocks of two 3×3 convolutions of
    ``width`` channels that keep the size, then ``flatten`` and one linear layer
    (as in LeNet) for square images of ``image_size`` pixels: ``2 * num_blocks +
    2`` weight layers. With ``residual=False`` the blocks are plain, so the two
    networks have the same layers and the same parameters and differ only in the
    additions. Chapter 10 trains both: with PyTorch's default initialisation and
    no BatchNorm the plain one's signal vanishes with depth and the residual one
    trains; :func:`he_init_` or ``batch_norm=True`` rescue the plain one too.
    Introduced in chapter 10.
    """

    def __init__(
        self,
        num_blocks: int = 9,
        width: int = 16,
        residual: bool = True,
        batch_norm: bool = False,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        stem_stride: int = 2,
    ) -> None:
        super().__init__()
        _check_positive(
            num_blocks=num_blocks,
            width=width,
            in_channels=in_channels,
            num_classes=num_classes,
            image_size=image_size,
            stem_stride=stem_stride,
        )
        self.in_channels, self.image_size = in_channels, image_size
        size = (image_size - 1) // stem_stride + 1  # the stem's output: 3x3, padding 1
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stem_stride, padding=1, bias=not batch_norm),
            nn.BatchNorm2d(width) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(width, width, batch_norm=batch_norm, residual=residual)
                for _ in range(num_blocks)
            )
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(width * size * size, num_classes))

    @property
    def depth(self) -> int:
        """The number of weight layers: convolutions and the final linear layer."""
        return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in self.modules())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.in_channels, "DeepConvNet")
        if tuple(x.shape[2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"DeepConvNet was built for {self.image_size}x{self.image_size} images, got "
                f"{tuple(x.shape[2:])}; pass image_size= when you build it."
            )
        return self.classifier(self.blocks(self.stem(x)))


class SmallResNet(nn.Module):
    """A small ResNet for 32×32 images, in the style of the CIFAR-10 ResNets of He et al.

    A 3×3 stem (``in_channels`` → ``widths[0]``) with BN and ReLU, then one
    stage per entry of ``widths``, each of ``blocks_per_stage``
    :class:`ResidualBlock` s; every stage after the first starts with a
    stride-2 block (a projection shortcut, where the paper's CIFAR-10 networks
    zero-pad the channels) that halves the image and changes the width.
    :func:`gap_classifier` ends it. ``widths=(16, 32, 64)`` with one block per
    stage is a ResNet-8 (8 weight layers on the main path), three blocks per
    stage the paper's ResNet-20 (apart from those shortcuts). Introduced in
    chapter 10.
    """

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 64),
        blocks_per_stage: int = 1,
        in_channels: int = 3,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        if len(widths) == 0:
            raise ValueError("widths must list at least one stage's channel count.")
        _check_positive(
            blocks_per_stage=blocks_per_stage, in_channels=in_channels, num_classes=num_classes
        )
        for width in widths:
            _check_positive(width=width)
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages, previous = [], widths[0]
        for index, width in enumerate(widths):
            blocks = [
                ResidualBlock(
                    previous if block == 0 else width,
                    width,
                    stride=2 if index > 0 and block == 0 else 1,
                )
                for block in range(blocks_per_stage)
            ]
            stages.append(nn.Sequential(*blocks))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.classifier = gap_classifier(previous, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.in_channels, "SmallResNet")
        return self.classifier(self.stages(self.stem(x)))


def he_init_(model: nn.Module) -> nn.Module:
    """Re-initialise every ``nn.Conv2d`` and ``nn.Linear`` of ``model`` for ReLU networks, in place.

    Each weight is drawn from a normal distribution with standard deviation
    ``sqrt(2 / fan_in)`` (``nn.init.kaiming_normal_`` with ``nonlinearity="relu"``,
    He et al. 2015), so that a ReLU layer keeps the variance of its input, and
    each bias is set to zero. PyTorch's default draws from a uniform
    distribution of variance ``1 / (3 fan_in)``, six times smaller, which
    shrinks the signal layer by layer in a deep ReLU network without BatchNorm. BatchNorm layers are left as they are.
    Returns ``model``, so that ``he_init_(DeepConvNet(...))`` reads as one step.
    Introduced in chapter 10.
    """
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers:
        raise ValueError("the model has no nn.Conv2d or nn.Linear layer to initialise.")
    for layer in layers:
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return model


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def layer_gradient_norms(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: LossFn | None = None,
) -> dict[str, float]:
    """The gradient norm of every weight layer's weight for one batch: ``{name: norm}``.

    Runs one forward and backward pass of ``loss_fn`` (cross-entropy by default)
    in training mode and returns the L2 norm of the gradient of each
    ``nn.Conv2d`` and ``nn.Linear`` weight, in the order of ``model.named_modules()``
    (input side first). The model's gradients are cleared before and after, and
    its parameters are not changed (BatchNorm layers do update their running
    statistics, as in any training-mode pass). Measured at initialisation, these norms show
    whether the error signal reaches the first layers. Introduced in chapter 10.
    """
    if inputs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"{inputs.shape[0]} inputs but {targets.shape[0]} targets; they must match."
        )
    layers = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]
    if not layers:
        raise ValueError("the model has no nn.Conv2d or nn.Linear layer to measure.")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    model.zero_grad(set_to_none=True)
    model.train()
    loss_fn(model(inputs), targets).backward()
    norms = {name: module.weight.grad.norm().item() for name, module in layers}
    model.zero_grad(set_to_none=True)
    return norms
