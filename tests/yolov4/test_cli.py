import subprocess
import sys

from PIL import Image

from yolov4.__main__ import main


def test_augment_gallery_command(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLOV4_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "gallery.png"
    assert main(["augment-gallery", "--out", str(out), "--size", "96"]) == 0
    with Image.open(out) as picture:
        assert picture.size == (4 * 96, 2 * (96 + 18))


def test_errors_are_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "yolov4", "augment-gallery", "--data", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("yolov4: error:") and "Traceback" not in result.stderr
