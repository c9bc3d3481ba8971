"""seq2seq: recurrent encoder-decoder models with attention, on PyTorch.

Public entry points:

- :class:`seq2seq.api.Seq2Seq`: load a trained run and predict.
- :func:`seq2seq.config.load_config`: read and validate a YAML config.
- :class:`seq2seq.errors.Seq2SeqError`: the one exception type for user errors.
"""

from seq2seq.errors import Seq2SeqError

__all__ = ["Seq2Seq", "Seq2SeqError", "__version__"]
__version__ = "0.1.0"


def __getattr__(name):
    # Import the API lazily so that `import seq2seq` stays cheap (no torch import).
    if name == "Seq2Seq":
        from seq2seq.api import Seq2Seq

        return Seq2Seq
    raise AttributeError(name)
