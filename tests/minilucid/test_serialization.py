import errno
import os

import numpy as np
import pytest

import minilucid as lucid
from minilucid import nn
from tests.conftest import DEVICES


def test_nested_round_trip(tmp_path):
    state = {
        "model": {"conv.weight": np.arange(6, dtype=np.float32).reshape(2, 3)},
        "epoch": 7,
        "lr": 0.01,
        "name": "yolov4",
        "flags": [True, False],
        "groups": [{"lr": 0.1, "params": [0, 1]}],
        "skipped": None,
    }
    lucid.save(state, tmp_path / "ckpt.npz")
    back = lucid.load(tmp_path / "ckpt.npz")
    np.testing.assert_array_equal(back["model"]["conv.weight"], state["model"]["conv.weight"])
    assert back["model"]["conv.weight"].dtype == np.float32
    assert back["epoch"] == 7 and back["lr"] == 0.01 and back["name"] == "yolov4"
    assert back["flags"] == [True, False]
    assert back["groups"][0]["lr"] == 0.1
    np.testing.assert_array_equal(back["groups"][0]["params"], [0, 1])
    assert "skipped" not in back


@pytest.mark.parametrize("device", DEVICES)
def test_model_round_trip_without_moving_the_model(tmp_path, device):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).to(device)
    weight = model[0].weight
    lucid.save(model.state_dict(), tmp_path / "model.npz")
    assert weight.device == device and model[0].weight is weight  # saving changed nothing
    fresh = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    fresh.load_state_dict(lucid.load(tmp_path / "model.npz"))
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items(), strict=True):
        np.testing.assert_array_equal(lucid.backend.as_numpy(a), b, err_msg=name)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "ckpt.npz"
    lucid.save({"a": np.ones(3)}, path)
    with pytest.raises(TypeError, match="needs pickle"):
        lucid.save({"a": np.ones(3), "b": object()}, path)
    np.testing.assert_array_equal(lucid.load(path)["a"], np.ones(3))
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_saved_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        lucid.save({"a": np.ones(2)}, tmp_path / "x.npz")
    finally:
        os.umask(umask)
    assert (tmp_path / "x.npz").stat().st_mode & 0o777 == 0o644


def test_files_that_are_not_archives_get_a_clear_error(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file at all")
    with pytest.raises(ValueError, match="is not a valid .npz archive"):
        lucid.load(garbage)
    truncated = tmp_path / "truncated.npz"
    lucid.save({"a": np.ones(1000)}, tmp_path / "full.npz")
    truncated.write_bytes((tmp_path / "full.npz").read_bytes()[:300])
    with pytest.raises(ValueError, match="is not a valid .npz archive"):
        lucid.load(truncated)
    with pytest.raises(FileNotFoundError, match="no such file"):
        lucid.load(tmp_path / "missing.npz")
    text = tmp_path / "notes.npz"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match="is not a valid .npz archive written by save[(][)]: it is not a zip file$"):
        lucid.load(text)  # NumPy itself would suggest allow_pickle=True here


def test_pickled_content_is_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, evil=np.array([{"a": 1}], dtype=object))  # an object array needs pickle
    with pytest.raises(ValueError, match="is not a valid .npz archive"):
        lucid.load(path)


def test_write_text_atomically_replaces_the_file_whole(tmp_path):
    from minilucid.serialization import write_text_atomically

    path = tmp_path / "config.yaml"
    path.write_text("old")
    write_text_atomically(path, "lr: 0.001\nnames: [café]\n")
    assert path.read_text(encoding="utf-8") == "lr: 0.001\nnames: [café]\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temporary left beside it
    with pytest.raises(FileNotFoundError) as missing:
        write_text_atomically(tmp_path / "missing" / "x.txt", "text")
    assert missing.value.filename == str(tmp_path / "missing" / "x.txt")  # the file asked for, not a temporary


def test_a_write_that_fails_names_the_file_asked_for_not_its_temporary(tmp_path):
    from minilucid.serialization import write_atomically

    (tmp_path / "a_file").write_text("mine")
    with pytest.raises(NotADirectoryError) as under_a_file:
        write_atomically(tmp_path / "a_file" / "x.bin", lambda file: file.write(b"x"))
    assert under_a_file.value.filename == str(tmp_path / "a_file" / "x.bin")

    def disk_full(file):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match="No space left on device") as full:
        write_atomically(tmp_path / "x.bin", disk_full)
    assert full.value.filename == str(tmp_path / "x.bin")
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError) as onto_a_folder:  # the rename onto a folder
        write_atomically(tmp_path / "folder", lambda file: file.write(b"x"))
    assert onto_a_folder.value.filename == str(tmp_path / "folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "folder"]  # no temporary left
