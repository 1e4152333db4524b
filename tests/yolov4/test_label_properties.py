"""Property test of the YOLO label parser: any line of text either parses or raises a
ValueError naming the file and line. Hypothesis comes with the dev extra; without it this
module is skipped, visibly, and the rest of the suite (the GPU tests among it) still runs."""

import pytest

pytest.importorskip("hypothesis", reason="the dev extra installs hypothesis for the property tests")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from yolov4.data.yolo import parse_yolo_label  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_garbage_label_lines_only_ever_raise_value_error(tmp_path_factory, line):
    path = tmp_path_factory.mktemp("labels") / "x.txt"
    path.write_text(line + "\n", encoding="utf-8")
    try:
        boxes = parse_yolo_label(path, 3, 64, 64)
    except ValueError as error:
        assert "x.txt, line" in str(error)
    else:
        assert boxes.shape[1] == 5
