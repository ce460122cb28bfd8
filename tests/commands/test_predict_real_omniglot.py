"""The shipped Omniglot 5-way model on raw Omniglot PNGs of test characters (never packed): ``fometa predict``
and ``FewShotClassifier`` right on at least 90% of the queries of 20 5-way 1-shot tasks, without a warning
(in grey, as the scans come, or saved as RGB); a Mini-ImageNet photograph among the queries gets one.

Needs the official zips (found through ``FOMETA_DATA_DIR``, as the data tests find them) and the shipped
``omniglot-5way`` checkpoint; skips, saying which is missing, without them.
"""
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import DATA_DIR, fometa_cli

from fometa import config, pretrained
from fometa.data import omniglot_paper_split
from fometa.data.familiar import UnfamiliarImageWarning
from fometa.fewshot import FewShotClassifier

ZIPS = [DATA_DIR / "omniglot" / "images_background.zip", DATA_DIR / "omniglot" / "images_evaluation.zip"]
MINI = DATA_DIR / "miniimagenet" / "miniimagenet.tar.gz"
MODEL = "omniglot-5way"
TASKS, WAYS = 20, 5


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    """20 folders ``task<i>/support/<character>/<png>`` and ``task<i>/query/<n>.png`` of test characters, with
    each query's character: ``[(support, [(query, character), ...]), ...]``."""
    if not all(z.is_file() for z in ZIPS):
        pytest.skip(f"real Omniglot zips not found in {DATA_DIR / 'omniglot'}: set FOMETA_DATA_DIR to the folder "
                    "holding omniglot/images_background.zip and omniglot/images_evaluation.zip")
    model = pretrained.get(MODEL)
    if not model.available:
        pytest.skip(f"the shipped {MODEL} model is not there yet ({model.status()}; tools/ship_model.py adds it)")
    data = config.from_dict(pretrained.load(MODEL).config).data
    drawings = {}  # (alphabet, character) -> [(zip, member), ...]
    for z in ZIPS:
        with zipfile.ZipFile(z) as f:
            for name in f.namelist():
                parts = name.split("/")
                if len(parts) == 4 and parts[3].endswith(".png"):
                    drawings.setdefault((parts[1], parts[2]), []).append((z, name))
    chars = sorted(drawings)
    _, test = omniglot_paper_split([a for a, _ in chars], [c for _, c in chars], data.split_seed, data.train_characters)
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("omniglot_tasks")
    out = []
    for t in range(TASKS):
        picked = [chars[i] for i in rng.choice(test, size=WAYS, replace=False)]
        queries = []
        for alphabet, character in picked:
            members = sorted(drawings[(alphabet, character)])
            s, q = (members[i] for i in rng.choice(len(members), size=2, replace=False))
            label = f"{alphabet}-{character}"
            _extract(s, root / f"task{t}" / "support" / label)
            queries.append((_extract(q, root / f"task{t}" / "query", f"{len(queries)}.png"), label))
        out.append((root / f"task{t}" / "support", queries))
    return out


def _extract(source, folder: Path, name: str | None = None) -> Path:
    z, member = source
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or member.rsplit("/", 1)[1])
    with zipfile.ZipFile(z) as f:
        path.write_bytes(f.read(member))
    return path


def test_fometa_predict_labels_raw_test_characters(capsys, tasks):
    right = total = 0
    for support, queries in tasks:
        rc, out, err = fometa_cli(capsys, "predict", MODEL, "--support", support, "--query", *[q for q, _ in queries])
        assert rc == 0 and err == "", err  # raw scans are like the model's training images: no warning
        for line, (_, label) in zip(out.strip().splitlines(), queries, strict=True):
            right += json.loads(line)["class"] == label
            total += 1
    print(f"fometa predict: {right} of {total} queries right")
    assert total == TASKS * WAYS and right / total >= 0.9, f"{right} of {total} queries right"


def test_the_classifier_labels_raw_test_characters(tasks):
    clf = FewShotClassifier.from_pretrained(MODEL)
    right = total = 0
    for support, queries in tasks:
        files = sorted(support.rglob("*.png"))
        clf.fit(files, [f.parent.name for f in files])
        predicted = clf.predict([q for q, _ in queries])
        right += sum(p == label for p, (_, label) in zip(predicted, queries, strict=True))
        total += len(queries)
    print(f"FewShotClassifier: {right} of {total} queries right")
    assert right / total >= 0.9, f"{right} of {total} queries right"


@pytest.fixture(scope="module")
def photograph(tmp_path_factory):
    """The first photograph of the Mini-ImageNet archive, as a file."""
    if not MINI.is_file():
        pytest.skip(f"real Mini-ImageNet archive not found at {MINI}: set FOMETA_DATA_DIR to the folder holding "
                    "miniimagenet/miniimagenet.tar.gz")
    with tarfile.open(MINI, "r|gz") as tf:
        member = next(m for m in tf if m.isfile() and m.name.endswith(".jpg"))
        path = tmp_path_factory.mktemp("photo") / "photo.jpg"
        path.write_bytes(tf.extractfile(member).read())
    return path


def _as_rgb(queries, folder: Path) -> list[Path]:
    from PIL import Image

    folder.mkdir()
    out = []
    for q, _ in queries:
        Image.open(q).convert("RGB").save(folder / q.name)
        out.append(folder / q.name)
    return out


def test_a_photograph_gets_a_warning_and_raw_scans_in_grey_or_rgb_none(capsys, tasks, photograph, tmp_path):
    support, queries = tasks[0]
    rc, out, err = fometa_cli(capsys, "predict", MODEL, "--support", support, "--query", photograph,
                              *[q for q, _ in queries])
    assert rc == 0 and len(out.strip().splitlines()) == 1 + len(queries), err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"fometa predict: warning: {photograph} is unlike the black-and-white drawings {MODEL} "
                           "was trained on (") and "mid-grey" in line, line
    rgb = _as_rgb(queries, tmp_path / "rgb")
    rc, out, err = fometa_cli(capsys, "predict", MODEL, "--support", support, "--query", *rgb)
    assert rc == 0 and err == "", err
    clf = FewShotClassifier.from_pretrained(MODEL)
    files = sorted(support.rglob("*.png"))
    clf.fit(files, [f.parent.name for f in files])  # warnings are errors here (pytest's filterwarnings)
    clf.predict([q for q, _ in queries] + rgb)
    with pytest.warns(UnfamiliarImageWarning, match=f"{photograph.name} is unlike") as caught:
        clf.predict([photograph])
    assert [where for _, where, _ in caught[0].message.found] == [str(photograph)]
