"""Tasks: what differs between kinds of sequence pairs, behind one seam (fairseq's tasks).

A task knows its data, its model and its criterion; the one
:class:`~seq2seq.training.Trainer` runs every task through these members:

=========================  ===============================================================
``config``                 the validated run config (its ``training`` section is shared)
``unit``                   what the loss is averaged over, for logs: ``tokens``, ``values``
``criterion``              ``count(batch)`` and ``criterion(output, batch, step) -> LossTerms``
``save(run_dir)``          vocabularies / scalers written into a new run directory
``build_model()``          the network its config describes (on the CPU)
``summary()``              one line about the data, printed when training starts
``epoch_batches(epoch, world_size)``   index groups of one epoch for a global batch of
                           ``batch_size x world_size``, a function of (seed, epoch, world_size) only
``batch(index)``           one training batch (with ``.to(device)``)
``forward(model, batch, teacher_forcing)``   the model output for the criterion
``log_values(step)``       schedule values logged with each training row
``validate(model)``        validation results (loss and metrics), or None without data
``higher_is_better(m)``    the direction of an early-stopping metric
``plot(records, run_dir)`` the run's curves as PNG
``attention_example(model)``  (weights, source tokens, output tokens) of one validation
                              example for TensorBoard, or None
=========================  ===============================================================

:mod:`~seq2seq.tasks.text` (tokens to tokens) and :mod:`~seq2seq.tasks.forecast`
(series to series) implement it; a new task (say, a tagger) is one module here, a
config schema in :mod:`seq2seq.config` and one line in :func:`build_task`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional


def build_task(config, run_dir: Optional[Path] = None):
    """The task of ``config`` (by its ``task`` key) with its training data read.

    Args:
        run_dir: an existing run to resume (vocabularies / scalers are read from it);
            None for a new run (they are built from the training data).

    Raises:
        Seq2SeqError: unreadable or malformed data, naming the file and line.
    """
    if config.task == "forecast":
        from seq2seq.tasks.forecast import ForecastTask

        return ForecastTask.for_training(config)
    from seq2seq.tasks.text import TextTask

    return TextTask.for_training(config, run_dir)
