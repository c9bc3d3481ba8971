"""Plots: training and validation curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(records: list[dict], path: Path, metric: str) -> None:
    """Draw training loss, validation loss and a validation metric against steps.

    Args:
        records: the rows of ``metrics.jsonl`` (``split`` = ``train`` or ``valid``).
        path: PNG to write.
        metric: the validation metric drawn on the right panel (e.g. ``wer``).
    """
    train = [r for r in records if r.get("split") == "train"]
    valid = [r for r in records if r.get("split") == "valid"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    if train:
        ax1.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss", lw=1)
    if valid:
        ax1.plot([r["step"] for r in valid], [r["loss"] for r in valid], "o-", label="valid loss", ms=3)
    ax1.set_xlabel("step")
    ax1.set_ylabel("cross-entropy per token (nats)")
    ax1.set_yscale("log")
    ax1.legend()
    ax1.grid(alpha=0.3)
    points = [r for r in valid if metric in r]
    if points:
        ax2.plot([r["step"] for r in points], [r[metric] for r in points], "o-", color="C2", ms=3)
    ax2.set_xlabel("step")
    ax2.set_ylabel(f"valid {metric}" + (" (%)" if metric in ("wer", "per", "accuracy", "bleu", "chrf") else ""))
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
