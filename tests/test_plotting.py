"""Attention figures: the labels fit the matrix, and a long title stays inside the figure."""

import numpy as np
import pytest

from seq2seq.plotting import attention_figure


def _title_inside(fig) -> bool:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    title = fig.axes[0].title.get_window_extent(renderer)
    return title.x0 >= 0 and title.x1 <= fig.bbox.width


def test_long_title_is_wrapped_inside_a_narrow_figure():
    weights = np.full((3, 2), 0.5)
    title = "a title much longer than a two-column heatmap is wide: pronunciation of ab"
    fig = attention_figure(weights, ["a", "b"], ["EY", "B"], title=title)
    assert _title_inside(fig)
    assert fig.axes[0].get_title().replace("\n", " ") == title        # wrapped, not shortened
    assert "\n" in fig.axes[0].get_title()


def test_short_title_is_kept_on_one_line():
    fig = attention_figure(np.full((2, 2), 0.5), ["a", "b"], ["EY", "B"], title="ab")
    assert fig.axes[0].get_title() == "ab" and _title_inside(fig)


def test_labels_must_fit_the_matrix():
    with pytest.raises(ValueError, match="does not fit"):
        attention_figure(np.full((2, 3), 0.5), ["a", "b"], ["EY"])
