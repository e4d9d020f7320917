"""Stand-in for Colab's ``google.colab`` module, for ``tests/test_colab.py``.

Colab imports ``google.colab`` when its kernel starts, and each chapter's setup cell
installs ``cnnbook`` only when ``"google.colab" in sys.modules``. The Colab test puts
this folder on the kernel's ``PYTHONPATH`` and imports the module at kernel start, so
the setup cell takes the Colab branch. The chapters use nothing from it.
"""
