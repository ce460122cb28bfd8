"""The shipped Omniglot 5-way model on raw Omniglot PNGs of test characters (never packed): ``fometa predict``
and ``FewShotClassifier`` right on at least 90% of the queries of 20 5-way 1-shot tasks.

Needs the official zips (found through ``FOMETA_DATA_DIR``, as the data tests find them) and the shipped
``omniglot-5way`` checkpoint; skips, saying which is missing, without them.
"""
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import DATA_DIR, fometa_cli

from fometa import config, pretrained
from fometa.data import omniglot_paper_split
from fometa.fewshot import FewShotClassifier

ZIPS = [DATA_DIR / "omniglot" / "images_background.zip", DATA_DIR / "omniglot" / "images_evaluation.zip"]
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
        assert rc == 0, err
        for line, (_, label) in zip(out.strip().splitlines(), queries):
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
        right += sum(p == label for p, (_, label) in zip(predicted, queries))
        total += len(queries)
    print(f"FewShotClassifier: {right} of {total} queries right")
    assert right / total >= 0.9, f"{right} of {total} queries right"
