"""The PNG plots of training and evaluation."""

import numpy as np


def test_plots_write_files_and_leave_the_callers_matplotlib_alone(tmp_path):
    """Writing PNGs must not switch pyplot's backend: that turned off a notebook's plots."""
    import matplotlib
    from PIL import Image

    from yolov4.plots import plot_confusion, plot_history, plot_pr_curves

    previous = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        history = [
            {"epoch": e, "loss": 3.0 / e, "box": 1.0 / e, "obj": 1.5 / e, "cls": 0.5 / e, "map50": 0.1 * e}
            for e in (1, 2)
        ]
        paths = [
            plot_history(history, tmp_path / "curves.png"),
            plot_pr_curves({"a": list(np.linspace(1, 0, 101))}, tmp_path / "pr.png"),
            plot_confusion(np.array([[3, 1], [0, 0]]), ["a"], tmp_path / "confusion.png"),
        ]
        assert matplotlib.get_backend() == "svg"
        for path in paths:
            assert Image.open(path).size[0] > 100
    finally:
        matplotlib.use(previous)
