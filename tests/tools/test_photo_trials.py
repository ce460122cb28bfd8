"""tools/photo_trials.py: a model tried on image files as a user tries it, from an archive or a folder."""
import json
import tarfile

import pytest
from load_by_path import load_module


def _tool():
    return load_module("tools/photo_trials.py", "photo_trials")


@pytest.fixture(scope="module")
def sources(tiny_classes, tmp_path_factory):
    """The tiny test classes as PNG files: ``(folder, archive)``, laid out as Mini-ImageNet's archive."""
    from PIL import Image

    base = tmp_path_factory.mktemp("photos")
    folder = base / "mini" / "test"
    for name, images in tiny_classes["test"].items():
        (folder / name).mkdir(parents=True)
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / name / f"{name}_{i:02d}.png")
    (base / "mini" / "train" / "other").mkdir(parents=True)  # another split: not read
    Image.fromarray(tiny_classes["train"]["t00"][0]).save(base / "mini" / "train" / "other" / "x.png")
    archive = base / "mini.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(base / "mini", arcname="mini")
    return base / "mini", archive


def test_archive_and_folder_give_the_same_images(sources, tiny_classes):
    folder, archive = sources
    tool = _tool()
    from_folder, from_archive = tool.read_classes(folder), tool.read_classes(archive)
    assert from_folder == from_archive
    assert sorted(from_folder) == sorted(tiny_classes["test"])
    assert all(len(files) == 10 for files in from_folder.values())
    assert tool.read_classes(folder / "test") == from_folder  # the split's folder itself


def test_trials_label_the_queries_and_repeat_exactly(sources, tiny_run, capsys):
    folder, archive = sources
    tool = _tool()
    args = ["--model", str(tiny_run), "--trials", "6", "--shots", "1", "--queries", "2"]
    assert tool.main([str(archive), *args]) == 0
    first = json.loads(capsys.readouterr().out)
    assert tool.main([str(folder), *args]) == 0
    again = json.loads(capsys.readouterr().out)
    for record in (first, again):
        record.pop("seconds")
        record.pop("model")
    assert first == again
    assert first["queries"] == 6 * 3 * 2 and first["ways"] == 3 and first["chance"] == pytest.approx(1 / 3)
    assert first["accuracy"] == pytest.approx(first["right"] / first["queries"])
    assert first["accuracy"] > 0.6  # the tiny model tells its test classes apart (chance 1/3)
    assert first["unfamiliar_warnings"] == 0  # drawn black-and-white like its training images
    # --trials sets how many tasks are drawn
    assert tool.main([str(folder), *args[:3], "3", *args[4:]]) == 0
    assert json.loads(capsys.readouterr().out)["queries"] == 3 * 3 * 2


@pytest.mark.parametrize("case, message", [
    ("missing", "no such archive or folder"),
    ("not a tar", "not a readable tar archive"),
    ("no split", "no images of split 'val'"),
    ("few images", "fewer than 11 images"),
    ("few classes", "a 3-way task needs 3"),
])
def test_bad_input_is_one_line(case, message, sources, tiny_run, tmp_path, capsys):
    folder, archive = sources
    source, extra = folder, []
    if case == "missing":
        source = tmp_path / "nothing.tar.gz"
    elif case == "not a tar":
        source = tmp_path / "bad.tar.gz"
        source.write_bytes(b"not an archive")
    elif case == "no split":
        extra = ["--split", "val"]
    elif case == "few images":
        extra = ["--shots", "1", "--queries", "10"]
    else:
        source = tmp_path / "two"
        for name in ("a", "b"):
            (source / name).mkdir(parents=True)
            (source / name / "x.png").write_bytes((folder / "test" / "s00" / "s00_00.png").read_bytes())
    assert _tool().main([str(source), "--model", str(tiny_run), "--trials", "1", *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_counts_below_one_are_refused(sources, capsys):
    with pytest.raises(SystemExit):
        _tool().main([str(sources[0]), "--trials", "0"])
    assert "--trials must be at least 1" in capsys.readouterr().err
