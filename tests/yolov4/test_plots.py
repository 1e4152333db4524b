"""The PNG plots of training and evaluation."""

import numpy as np


def test_plots_write_files_and_leave_the_callers_matplotlib_alone(tmp_path):
    """Writing PNGs must not switch pyplot's backend: that turned off a notebook's plots."""
    import matplotlib
    from PIL import Image

    from yolov4.evaluation.plots import plot_confusion, plot_history, plot_pr_curves

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


def test_a_plot_or_picture_that_fails_midway_leaves_the_old_file(tmp_path, monkeypatch):
    """Plots and detection sheets are written atomically: a crash while writing keeps the old file."""
    from matplotlib.figure import Figure
    from PIL import Image

    from yolov4.evaluation.draw import save_grid
    from yolov4.evaluation.plots import plot_history

    def fail_midway(self, file, **options):
        file.write(b"half a PNG")
        raise OSError("disk full")

    curves, sheet = tmp_path / "curves.png", tmp_path / "detections.png"
    curves.write_bytes(b"the old curves")
    sheet.write_bytes(b"the old sheet")
    monkeypatch.setattr(Figure, "savefig", fail_midway)
    monkeypatch.setattr(Image.Image, "save", fail_midway)
    for write in (
        lambda: plot_history([{"epoch": 1, "loss": 1.0}], curves),
        lambda: save_grid([Image.new("RGB", (8, 8))], sheet),
    ):
        try:
            write()
        except OSError as error:
            assert "disk full" in str(error)
        else:
            raise AssertionError("the failing write should raise")
    assert curves.read_bytes() == b"the old curves"
    assert sheet.read_bytes() == b"the old sheet"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "detections.png"]  # no temporaries left


def test_labels_and_detections_are_outlined_in_their_class_colour_where_their_box_is():
    from yolov4.evaluation.draw import PALETTE, draw_detections, draw_labels

    black = np.zeros((3, 50, 60), np.float32)
    labelled = np.asarray(draw_labels(black, np.array([[1, 30.0, 30.0, 20.0, 10.0]])))  # x 20..40, y 25..35
    detected = np.asarray(draw_detections(black, [{"box": [20.0, 25.0, 40.0, 35.0], "score": 0.9, "class_id": 1}]))
    for picture in (labelled, detected):
        assert tuple(picture[30, 20]) == PALETTE[1]  # the left edge, (row, column)
        assert tuple(picture[30, 39]) == PALETTE[1]  # the right edge
        assert tuple(picture[30, 30]) == (0, 0, 0)  # inside, nothing
        assert tuple(picture[30, 45]) == (0, 0, 0)  # outside, nothing
