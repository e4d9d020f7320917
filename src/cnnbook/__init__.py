"""cnnbook: the code shared by the chapters of the CNN book.

One module per idea: :mod:`cnnbook.device` (GPU auto-selection),
:mod:`cnnbook.data` (datasets and in-memory tensors), :mod:`cnnbook.train`
(seeding, fit, evaluate) and :mod:`cnnbook.plot` (figures). Chapters import what
they need, for example ``from cnnbook.train import fit``.
"""

__version__ = "0.1.0"
