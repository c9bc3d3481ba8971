"""Plots: training and validation curves, the teacher-forcing schedule, attention.

Figures are drawn with matplotlib's object API (:class:`matplotlib.figure.Figure`,
imported when a plot is drawn), so nothing here selects or changes the global
plotting backend of a user's session or notebook.
"""

from __future__ import annotations

import textwrap
from pathlib import Path


def _figure(**kwargs):
    """A new figure that belongs to no pyplot backend (it renders with Agg on save)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def plot_curves(records: list[dict], path: Path, metric: str,
                loss_label: str = "cross-entropy per token (nats)") -> None:
    """Draw training loss, validation loss (log scale) and a validation metric against steps.

    Args:
        records: the rows of ``metrics.jsonl`` (``split`` = ``train`` or ``valid``).
        path: PNG to write.
        metric: the validation metric drawn on the right panel (e.g. ``wer``).
        loss_label: the loss axis label.
    """
    train = [r for r in records if r.get("split") == "train"]
    valid = [r for r in records if r.get("split") == "valid"]
    fig = _figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    if train:
        ax1.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss", lw=1)
    if valid:
        ax1.plot([r["step"] for r in valid], [r["loss"] for r in valid], "o-", label="valid loss", ms=3)
    ax1.set_xlabel("step")
    ax1.set_ylabel(loss_label)
    ax1.set_yscale("log")
    ax1.legend()
    ax1.grid(alpha=0.3)
    points = [r for r in valid if metric in r]
    if points:
        ax2.plot([r["step"] for r in points], [r[metric] for r in points], "o-", color="C2", ms=3)
    ax2.set_xlabel("step")
    percent = metric in ("wer", "per", "accuracy", "bleu", "chrf", "smape")
    ax2.set_ylabel(f"valid {metric}" + (" (%)" if percent else ""))
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def plot_teacher_forcing(records: list[dict], path: Path) -> None:
    """Draw eps_i, the probability of feeding the gold token (scheduled sampling), against steps.

    Args:
        records: rows of ``metrics.jsonl``; training rows carry ``teacher_forcing``.
        path: PNG to write.
    """
    rows = [r for r in records if r.get("split") == "train" and "teacher_forcing" in r]
    fig = _figure(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.plot([r["step"] for r in rows], [r["teacher_forcing"] for r in rows], color="C3")
    ax.set_xlabel("step")
    ax.set_ylabel("P(gold previous token)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("scheduled sampling (Bengio et al. 2015)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    """Write a figure atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)


def attention_figure(weights, source_tokens: list[str], output_tokens: list[str], title: str = ""):
    """One prediction's attention as a heatmap figure (source across, output down).

    Args:
        weights: (steps, src_len) attention weights, a nested list, array or tensor; a
            row more than ``output_tokens`` is the ``<eos>`` step (labelled so).
        source_tokens: src_len column labels; output_tokens: row labels.

    Returns:
        A :class:`matplotlib.figure.Figure`.

    Raises:
        ValueError: the labels do not fit the matrix.
    """
    import numpy as np

    if hasattr(weights, "detach"):
        weights = weights.detach().float().cpu()
    w = np.asarray(weights, dtype=float)
    rows = list(output_tokens) + (["<eos>"] if w.ndim == 2 and w.shape[0] == len(output_tokens) + 1 else [])
    if w.ndim != 2 or w.shape != (len(rows), len(source_tokens)):
        raise ValueError(f"attention of shape {w.shape} does not fit {len(output_tokens)} output and "
                         f"{len(source_tokens)} source tokens")
    width = max(3.0, 0.45 * w.shape[1] + 1.5)
    # a title wider than the figure would be cut at its edges: wrapped to the width instead
    # (about 0.09 inch a character at matplotlib's default 12-point title)
    title = "\n".join(textwrap.wrap(title, max(12, int(width / 0.09)), break_on_hyphens=False)) if title else ""
    height = max(2.5, 0.4 * w.shape[0] + 1.2) + 0.2 * title.count("\n")
    fig = _figure(figsize=(width, height), dpi=100)
    ax = fig.subplots()
    image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source_tokens)), source_tokens,
                  rotation=90 if source_tokens and max(map(len, source_tokens)) > 2 else 0)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def plot_attention(weights, source_tokens: list[str], output_tokens: list[str], path: Path,
                   title: str = "") -> None:
    """:func:`attention_figure` written to the PNG ``path`` (atomically).

    Raises:
        ValueError: the labels do not fit the matrix.
    """
    _save(attention_figure(weights, source_tokens, output_tokens, title), path)


def plot_forecast(past_times, past, future_times, forecast, path: Path, truth=None, lower=None, upper=None,
                  title: str = "", label: str = "value") -> None:
    """Draw one series' past, forecast, prediction interval and (when known) true future.

    Args:
        past_times: (T,) times (dates or numbers); past: (T,) values shown as history.
        future_times: (H,) forecast times; forecast: (H,) point forecast.
        truth: (H,) true future values, or None.
        lower, upper: (H,) interval bounds, or None.
        path: PNG to write (atomically).
    """
    fig = _figure(figsize=(10, 3.8))
    ax = fig.subplots()
    ax.plot(past_times, past, color="0.3", lw=1, label="past")
    if truth is not None:
        ax.plot(future_times, truth, color="C0", lw=1.2, label="true future")
    if lower is not None and upper is not None:
        ax.fill_between(future_times, lower, upper, color="C1", alpha=0.25, lw=0, label="prediction interval")
    ax.plot(future_times, forecast, color="C1", lw=1.6, ls="--", label="forecast")
    ax.axvline(future_times[0], color="0.6", ls=":", lw=1)
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)
