"""The GPU tests share the detector tests' tiny dataset."""

from tests.yolov4.conftest import tiny_dataset  # noqa: F401
