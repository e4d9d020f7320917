"""cnnbook: the code shared by the chapters of the CNN book.

One module per idea; chapters import what they need, for example
``from cnnbook.train import fit``. The public API is every name without a
leading underscore in these modules, and each public function's docstring
names the chapter that introduces it.

- :mod:`cnnbook.device`: pick the GPU when there is one, describe it, synchronise timers.
- :mod:`cnnbook.data`: datasets (online or offline copies), their statistics and
  normalisation, whole splits as tensors, validation splits and the in-memory loader.
- :mod:`cnnbook.train`: seeding, the training loop (:func:`~cnnbook.train.fit`), and
  evaluation (predictions with optional test-time augmentation, accuracy, confusion matrix).
- :mod:`cnnbook.plot`: image grids, training curves, confusion-matrix figures.
- :mod:`cnnbook.conv`: convolution and pooling in NumPy (naive and im2col), output sizes.
- :mod:`cnnbook.animation`: animations of convolution arithmetic (the kernel sliding, the
  output filling in), as self-contained HTML.
- :mod:`cnnbook.numpy_net`: the layers and network of the CNN built from scratch in NumPy.
- :mod:`cnnbook.models`: the PyTorch networks of the book (MNIST, LeNet/AlexNet, CIFAR-10, RNNs).
- :mod:`cnnbook.blocks`: modern CNN blocks (1x1 convolutions, GAP, VGG, BatchNorm from scratch,
  residual blocks) and the small networks built from them.
- :mod:`cnnbook.augment`: data augmentation on whole batches of tensors.
- :mod:`cnnbook.cifar`: the CIFAR-10 training recipe shared by chapter 11 and the benchmark.
- :mod:`cnnbook.distributed`: data-parallel plumbing under torchrun (process group, device per
  rank, sharded in-memory loader, rank-0 logging and saving, launching from a notebook).
- :mod:`cnnbook.ddp_experiments`: chapter 12's all-reduce, equivalence and throughput runs.
- :mod:`cnnbook.visualize`: filters, feature maps, saliency and occlusion.
- :mod:`cnnbook.text`: vocabularies, encoding, training windows and sampling for the RNN chapters.
"""

__version__ = "0.1.0"
