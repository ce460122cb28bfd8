"""fometa.FewShotClassifier: a trained run fine-tuned on a new task (the tiny run of conftest.py)."""
import json
import subprocess
import sys

import numpy as np
import pytest

import fometa
from fometa import checkpoint, pretrained
from fometa.data import DataError, ImageSpec
from fometa.evaluate import predict
from fometa.fewshot import FewShotClassifier, NotFittedError, read_support_folder

Image = pytest.importorskip("PIL.Image")

TEST = ["s00", "s01", "s02", "s03", "s04", "s05"]


def _task(classes, names, shots=2, queries=8):
    """Support (the first ``shots`` examples of each class) and queries (the last ``queries``)."""
    test = classes["test"]
    sx = np.concatenate([test[n][:shots] for n in names])
    qx = np.concatenate([test[n][-queries:] for n in names])
    return sx, np.repeat(names, shots), qx, np.repeat(names, queries)


@pytest.fixture(scope="module")
def clf(tiny_run):
    return FewShotClassifier.from_run(tiny_run)


def test_fometa_exports_the_classifier_without_importing_it_on_import_fometa(tmp_path):
    assert fometa.FewShotClassifier is FewShotClassifier
    code = "import json, sys, fometa; print(json.dumps('fometa.fewshot' in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) is False, "import fometa imported fometa.fewshot"


def test_fit_returns_itself_with_the_sorted_classes(clf, tiny_classes):
    sx, sy, _, _ = _task(tiny_classes, ["s02", "s00", "s01"])
    assert clf.fit(sx, sy) is clf
    assert list(clf.classes_) == ["s00", "s01", "s02"] and clf.n_classes_ == 3 and clf.ways == 3


@pytest.mark.parametrize("mode", ["per-query", "transductive"])
def test_well_separated_classes_are_classified_above_chance(tiny_run, tiny_classes, mode):
    accs = []
    for seed, start in enumerate(range(4)):
        sx, sy, qx, qy = _task(tiny_classes, TEST[start:start + 3])
        accs.append(FewShotClassifier.from_run(tiny_run, mode=mode, seed=seed).fit(sx, sy).score(qx, qy))
    assert np.mean(accs) >= 0.5, f"3-way accuracy {accs} is hardly above chance (1/3)"


def test_per_query_predictions_do_not_depend_on_the_other_queries(clf, tiny_classes):
    sx, sy, qx, _ = _task(tiny_classes, TEST[:3])
    clf.fit(sx, sy)
    a = clf.predict_proba(qx[[0, 1, 2]])
    b = clf.predict_proba(qx[[5, 0, 20]])
    np.testing.assert_array_equal(a[0], b[1], err_msg="a query's probabilities changed with the other queries")
    np.testing.assert_array_equal(clf.predict_proba(qx[:1])[0], a[0])


def test_transductive_predictions_do(tiny_run, tiny_classes):
    sx, sy, qx, _ = _task(tiny_classes, TEST[:3])
    clf = FewShotClassifier.from_run(tiny_run, mode="transductive").fit(sx, sy)
    a, b = clf.predict_proba(qx[[0, 1, 2]]), clf.predict_proba(qx[[0, 20, 21]])
    assert not np.array_equal(a[0], b[0]), "transductive batch norm should let the queries shape each other"


def test_fewer_classes_than_ways_use_the_first_outputs(clf, tiny_classes):
    sx, sy, qx, _ = _task(tiny_classes, ["s04", "s05"])
    proba = clf.fit(sx, sy).predict_proba(qx)
    assert proba.shape == (len(qx), 2) and np.allclose(proba.sum(axis=1), 1.0)
    # the probabilities are the softmax of the network's first two outputs
    sxb = clf.transform(sx)[None]
    logits = np.concatenate([predict(clf.network, clf.params_, sxb, clf.transform(qx[i:i + 1])[None], "per-query")[0]
                             for i in range(3)])
    assert logits.shape == (3, 3)
    z = np.exp(logits[:, :2] - logits[:, :2].max(axis=1, keepdims=True))
    np.testing.assert_allclose(proba[:3], z / z.sum(axis=1, keepdims=True), rtol=1e-6)
    assert list(clf.predict(qx[:3])) == list(clf.classes_[proba[:3].argmax(axis=1)])


def test_staged_probabilities_record_one_adaptation(tiny_run, tiny_classes):
    sx, sy, qx, _ = _task(tiny_classes, TEST[1:4])
    clf = FewShotClassifier.from_run(tiny_run, steps=50, seed=3).fit(sx, sy)
    staged = clf.staged_predict_proba(qx, steps=(50, 0, 1, 5))
    assert sorted(staged) == [0, 1, 5, 50] and all(p.shape == (len(qx), 3) for p in staged.values())
    np.testing.assert_array_equal(staged[50], clf.predict_proba(qx))
    for k in (0, 5):  # the same mini-batches as a fit of k steps: each stage is that fit's prediction
        fitted = FewShotClassifier.from_run(tiny_run, steps=k, seed=3).fit(sx, sy)
        np.testing.assert_array_equal(staged[k], fitted.predict_proba(qx), err_msg=f"stage {k}")
    assert not np.array_equal(staged[0], staged[50]), "fifty inner steps changed nothing"


def test_step_zero_is_the_initialization(tiny_run, tiny_classes):
    sx, sy, qx, _ = _task(tiny_classes, TEST[:3])
    clf = FewShotClassifier.from_run(tiny_run, steps=0).fit(sx, sy)
    ckpt, _ = pretrained.load_run(tiny_run)[:2]
    for k, v in ckpt.params.items():
        np.testing.assert_array_equal(np.asarray(clf.params_[k])[0], v)


def test_transform_is_the_run_preprocessing_and_paths_work_as_arrays(tiny_run, tiny_images, tiny_classes, tmp_path):
    clf = FewShotClassifier.from_run(tiny_run)
    assert clf.spec == ImageSpec.for_packed(tiny_images) and clf.spec.shape == (12, 12)
    sx, sy, qx, _ = _task(tiny_classes, TEST[:3], queries=2)
    paths = []
    for i, a in enumerate(sx):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(a).save(paths[-1])
    np.testing.assert_array_equal(clf.transform(paths), sx.astype(np.float32) / 255)
    big = tmp_path / "big.png"  # another size and colour mode: converted as the run's spec says, not refused
    Image.fromarray(np.repeat(np.kron(sx[0], np.ones((3, 3), np.uint8))[..., None], 3, axis=2)).save(big)
    assert clf.transform([big]).shape == (1, 12, 12)
    a = clf.fit(paths, sy).predict_proba(qx)
    b = clf.fit(sx, sy).predict_proba(qx)
    np.testing.assert_array_equal(a, b)


def test_same_seed_same_probabilities(tiny_run, tiny_classes):
    sx, sy, qx, _ = _task(tiny_classes, TEST[2:5])
    a = FewShotClassifier.from_run(tiny_run, seed=1).fit(sx, sy).predict_proba(qx)
    b = FewShotClassifier.from_run(tiny_run, seed=1).fit(sx, sy).predict_proba(qx)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("labels, message", [
    (["a", "b", "c", "d", "a", "b"], "4 classes, but the model has 3 outputs"),
    (["a"] * 6, "at least 2 classes"),
    (["a", "b"], "6 images but 2 labels"),
])
def test_fit_errors(clf, tiny_classes, labels, message):
    sx = _task(tiny_classes, TEST[:3])[0]
    with pytest.raises(ValueError, match=message):
        clf.fit(sx, labels)


def test_predict_before_fit(tiny_run):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        FewShotClassifier.from_run(tiny_run).predict(np.zeros((1, 12, 12), np.uint8))


@pytest.mark.parametrize("options, message", [({"mode": "inductive"}, "mode must be one of"),
                                              ({"steps": -1}, "steps must be a non-negative int")])
def test_bad_options(tiny_run, options, message):
    with pytest.raises(ValueError, match=message):
        FewShotClassifier.from_run(tiny_run, **options)


def test_unreadable_image_is_named(clf, tiny_classes, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    sx, sy, _, _ = _task(tiny_classes, TEST[:3], shots=1)
    with pytest.raises(DataError, match="notes.png"):
        clf.fit([bad, *sx[1:]], sy)


def test_loading_errors(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no such checkpoint file"):
        FewShotClassifier.from_run(tmp_path / "nowhere")
    with pytest.raises(pretrained.RegistryError, match="no shipped model named 'no-such-model'"):
        FewShotClassifier.from_pretrained("no-such-model")


def test_support_folder_reading(tmp_path):
    for cls, n in (("b", 2), ("a", 1)):
        (tmp_path / "s" / cls).mkdir(parents=True)
        for i in range(n):
            (tmp_path / "s" / cls / f"{i}.png").write_bytes(b"")
    (tmp_path / "s" / ".hidden").mkdir()
    files, labels = read_support_folder(tmp_path / "s")
    assert labels == ["a", "b", "b"] and [f.name for f in files] == ["0.png", "0.png", "1.png"]
    (tmp_path / "s" / "c").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        read_support_folder(tmp_path / "s")
    with pytest.raises(DataError, match="no such folder"):
        read_support_folder(tmp_path / "gone")


# -- scikit-learn's contract, without scikit-learn (tests/test_fewshot_sklearn.py: with it) ------------------
def test_the_constructor_stores_its_parameters_and_reads_nothing(tmp_path, tiny_classes):
    model = tmp_path / "nowhere"
    clf = FewShotClassifier(model, steps=7, mode="transductive", seed=3, backend="numpy")
    assert vars(clf) == {"model": model, "steps": 7, "mode": "transductive", "seed": 3, "backend": "numpy"}
    assert clf.get_params() == vars(clf) and clf.get_params()["model"] is model
    assert repr(clf) == f"FewShotClassifier(model={model!r}, steps=7, mode='transductive', seed=3, backend='numpy')"
    sx, sy, _, _ = _task(tiny_classes, TEST[:3])
    with pytest.raises(checkpoint.CheckpointError, match="no such checkpoint file"):  # fit reads the model
        clf.fit(sx, sy)
    assert FewShotClassifier().model == "omniglot-5way" and repr(FewShotClassifier()) == \
        "FewShotClassifier(model='omniglot-5way')"


def test_set_params_and_get_params_round_trip(tiny_run, tiny_classes):
    sx, sy, qx, _ = _task(tiny_classes, TEST[1:4])
    a = FewShotClassifier(tiny_run)
    assert a.set_params(steps=7, seed=2, mode="transductive") is a
    assert a.get_params() == {"model": tiny_run, "steps": 7, "mode": "transductive", "seed": 2, "backend": None}
    b = FewShotClassifier(**a.get_params())
    np.testing.assert_array_equal(a.fit(sx, sy).predict_proba(qx), b.fit(sx, sy).predict_proba(qx))
    refit = a.set_params(steps=0).fit(sx, sy).predict_proba(qx)  # fit uses the parameters as they are now
    np.testing.assert_array_equal(refit, FewShotClassifier(tiny_run, steps=0, mode="transductive", seed=2)
                                  .fit(sx, sy).predict_proba(qx))
    with pytest.raises(ValueError, match="Invalid parameter 'stpes' for estimator FewShotClassifier"):
        a.set_params(stpes=3)


@pytest.mark.parametrize("params, error, message", [
    ({"mode": "inductive"}, ValueError, "mode must be one of"),
    ({"steps": -1}, ValueError, "steps must be a non-negative int"),
    ({"steps": True}, ValueError, "steps must be a non-negative int"),
    ({"seed": "0"}, ValueError, "seed must be an int"),
    ({"backend": 1}, ValueError, "backend must be None"),
    ({"model": 3}, TypeError, "model must be a shipped model's name"),
])
def test_bad_parameters_are_refused_by_fit(tiny_run, tiny_classes, params, error, message):
    sx, sy, _, _ = _task(tiny_classes, TEST[:3])
    clf = FewShotClassifier(tiny_run).set_params(**params)  # stored as given
    with pytest.raises(error, match=message):
        clf.fit(sx, sy)
    fitted = FewShotClassifier(tiny_run).fit(sx, sy).set_params(**params)
    if "mode" in params:  # a prediction-time parameter: checked where it is used
        with pytest.raises(error, match=message):
            fitted.predict(sx)


def _save_pngs(folder, arrays):
    folder.mkdir(parents=True)
    paths = [folder / f"{i}.png" for i in range(len(arrays))]
    for path, a in zip(paths, arrays, strict=True):
        Image.fromarray(a).save(path)
    return paths


@pytest.mark.parametrize("mode", ["per-query", "transductive", "support-stats"])
def test_a_pickled_classifier_predicts_the_same_bit_for_bit_without_the_support_images(tiny_run, tiny_classes,
                                                                                        tmp_path, mode):
    import pickle
    import shutil

    sx, sy, qx, _ = _task(tiny_classes, TEST[2:5])
    clf = FewShotClassifier(tiny_run, mode=mode, seed=4).fit(_save_pngs(tmp_path / "support", sx), sy)
    expected, staged = clf.predict_proba(qx), clf.staged_predict_proba(qx, steps=(0, 5))
    data = pickle.dumps(clf)
    shutil.rmtree(tmp_path / "support")
    loaded = pickle.loads(data)
    assert loaded.get_params() == clf.get_params() and list(loaded.classes_) == list(clf.classes_)
    np.testing.assert_array_equal(loaded.predict_proba(qx), expected)
    np.testing.assert_array_equal(loaded.predict(qx), clf.predict(qx))
    assert loaded.score(qx, clf.predict(qx)) == 1.0
    for k, p in loaded.staged_predict_proba(qx, steps=(0, 5)).items():  # reads the run again, for phi
        np.testing.assert_array_equal(p, staged[k], err_msg=f"stage {k}")


def test_the_pickle_holds_the_adapted_weights_not_the_initialization_or_the_backend(tiny_run, tiny_classes):
    import pickle

    sx, sy, qx, _ = _task(tiny_classes, TEST[:3])
    clf = FewShotClassifier(tiny_run).fit(sx, sy)
    state = clf.__getstate__()
    assert set(state) == {"model", "steps", "mode", "seed", "backend", "classes_", "n_classes_", "params_", "_support",
                          "_run"}, sorted(state)
    assert all(type(v) is np.ndarray for v in state["params_"].values())
    np.testing.assert_array_equal(state["_support"][0], clf.transform(sx))  # the inputs, not the images
    ckpt = pretrained.load_run(tiny_run)[0]
    weights = sum(v.nbytes for v in ckpt.params.values())
    size = len(pickle.dumps(clf))
    assert weights < size < 2 * weights, f"a {size}-byte pickle for {weights} bytes of weights: phi or the " \
                                         "inner optimizer state travels, or the weights do not"


@pytest.mark.gpu
def test_a_classifier_fitted_on_the_gpu_pickles_host_arrays_and_predicts_anywhere(tiny_run, tiny_classes, gpu_backend):
    import pickle

    sx, sy, qx, _ = _task(tiny_classes, TEST[:3])
    clf = FewShotClassifier(tiny_run, backend="cupy").fit(sx, sy)
    expected = clf.predict_proba(qx)
    state = clf.__getstate__()
    assert all(type(v) is np.ndarray for v in state["params_"].values()), "device arrays in the pickle"
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(loaded.predict_proba(qx), expected)
    on_cpu = loaded.set_params(backend="numpy").predict_proba(qx)  # the same weights, NumPy's arithmetic
    np.testing.assert_allclose(on_cpu, expected, rtol=1e-4, atol=1e-6)


def test_an_unpickled_classifier_keeps_its_network_and_replays_only_its_own_model(tiny_run, tiny_classes, tmp_path):
    import dataclasses
    import pickle

    sx, sy, qx, _ = _task(tiny_classes, TEST[:3])
    clf = FewShotClassifier(tiny_run).fit(sx, sy)
    ckpt = pretrained.load_run(tiny_run)[0]
    other = checkpoint.save(tmp_path / "other.h5", dataclasses.replace(ckpt, iteration=ckpt.iteration + 1))
    loaded = pickle.loads(pickle.dumps(clf)).set_params(model=other)
    np.testing.assert_array_equal(loaded.predict_proba(qx), clf.predict_proba(qx))  # the fitted model's network
    with pytest.raises(ValueError, match="not the model this classifier was fitted with"):
        loaded.staged_predict_proba(qx)
    np.testing.assert_array_equal(loaded.fit(sx, sy).predict_proba(qx), clf.predict_proba(qx))  # refit: same phi
    unfitted = pickle.loads(pickle.dumps(FewShotClassifier(tiny_run).load()))
    assert vars(unfitted) == FewShotClassifier(tiny_run).get_params()  # no loaded model travels
    with pytest.raises(NotFittedError):
        unfitted.predict(qx)


def test_import_without_scikit_learn_and_a_pickle_that_needs_neither_images_nor_checkpoint(tiny_run, tiny_classes,
                                                                                          tmp_path):
    """In a fresh interpreter where scikit-learn and joblib cannot be imported: ``import fometa``, fit, predict
    and the parameters work as with them; a classifier pickled here predicts there, bit for bit, after its run
    folder and its support images are gone."""
    import pickle
    import shutil

    sx, sy, qx, _ = _task(tiny_classes, TEST[3:6])
    shutil.copytree(tiny_run, tmp_path / "run")
    pickled = FewShotClassifier(tmp_path / "run", seed=5).fit(_save_pngs(tmp_path / "support", sx), sy)
    (tmp_path / "clf.pkl").write_bytes(pickle.dumps(pickled))
    shutil.rmtree(tmp_path / "run")
    shutil.rmtree(tmp_path / "support")
    np.savez(tmp_path / "task.npz", sx=sx, sy=sy, qx=qx)
    code = f"""
import json, pickle, sys
import numpy as np

class NoScikitLearn:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("sklearn", "joblib"):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, NoScikitLearn())
import fometa
from fometa.fewshot import FewShotClassifier

task = np.load("task.npz")
clf = FewShotClassifier({str(tiny_run)!r}, seed=5)
clf = FewShotClassifier(**clf.set_params(steps=20).get_params()).fit(task["sx"], task["sy"])
loaded = pickle.loads(open("clf.pkl", "rb").read())
np.savez("out.npz", fitted=clf.predict_proba(task["qx"]), loaded=loaded.predict_proba(task["qx"]))
try:
    clf.__sklearn_tags__()
    tags = "read"
except ImportError:
    tags = "ImportError"
print(json.dumps({{"sklearn": sorted(m for m in sys.modules if m.partition(".")[0] in ("sklearn", "joblib")),
                  "tags": tags, "classes": [str(c) for c in clf.classes_]}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"sklearn": [], "tags": "ImportError", "classes": TEST[3:6]}, report
    out = np.load(tmp_path / "out.npz")
    expected = FewShotClassifier(tiny_run, seed=5, steps=20).fit(sx, sy).predict_proba(qx)
    np.testing.assert_array_equal(out["fitted"], expected)
    np.testing.assert_array_equal(out["loaded"], pickled.predict_proba(qx))


def _object_array(items):
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def test_collections_of_images_and_subsets_by_index(clf, tiny_classes, tmp_path):
    sx, sy, qx, _ = _task(tiny_classes, TEST[:3], queries=2)
    expected = clf.fit(sx, sy).predict_proba(qx)
    paths = _save_pngs(tmp_path / "q", qx)
    pictures = [Image.open(p) for p in paths]
    for X in (list(qx), tuple(qx), qx[..., None], paths, [str(p) for p in paths], np.array([str(p) for p in paths]),
              pictures, _object_array(pictures), [p.read_bytes() for p in paths]):
        np.testing.assert_array_equal(clf.predict_proba(X), expected, err_msg=type(X).__name__)
    idx = np.array([4, 0, 2])  # a subset by index, as cross-validation takes it; per-query: each query alone
    for X in (qx, np.array([str(p) for p in paths]), _object_array(pictures)):
        np.testing.assert_array_equal(clf.predict_proba(X[idx]), expected[idx])
    np.testing.assert_array_equal(clf.fit(_object_array(list(sx)), list(sy)).predict_proba(qx), expected)


@pytest.mark.parametrize("X, error, message", [
    (np.zeros((6, 144)), ValueError, r"X is a 2-D array of shape \(6, 144\), one row of features per example"),
    ("q.png", ValueError, "X is one image"),
    (np.zeros(6), ValueError, "X is a 1-D array of numbers"),
    (np.zeros((6, 1, 12, 12, 1)), ValueError, "X has 5 dimensions"),
    ([], ValueError, "X holds no images"),
    ({"a": 1}, TypeError, "X is a dict"),
    (None, TypeError, "X is a NoneType"),
    (5, TypeError, "X is a int"),
])
def test_what_scikit_learn_could_not_mean_by_x_gets_its_usual_errors(clf, tiny_classes, X, error, message):
    sx, sy, _, _ = _task(tiny_classes, TEST[:3])
    with pytest.raises(error, match=message):
        FewShotClassifier.from_run(clf.model).fit(X, sy)
    clf.fit(sx, sy)
    for method in (clf.predict, clf.predict_proba, clf.transform):
        with pytest.raises(error, match=message):
            method(X)


def test_the_documented_pickle_size_of_omniglot_5way(tmp_path):
    """docs/own-images.md gives the size of omniglot-5way pickled after fitting on the five sample characters:
    the weights' and each support input's bytes exactly, the whole within 1% (pickle protocols differ a little)."""
    import pickle
    import re
    from pathlib import Path

    from fometa import samples

    try:
        pretrained.checkpoint_path("omniglot-5way")
    except pretrained.RegistryError as exc:
        pytest.skip(f"the shipped model is not in this installation: {exc}")
    page = (Path(__file__).resolve().parents[1] / "docs" / "own-images.md").read_text()
    found = re.search(r"it is\s+([\d,]+) bytes \(`len\(pickle.dumps\(clf\)\)`\): ([\d,]+) of adapted weights, "
                      r"([\d,]+) for each support image", page)
    assert found, "docs/own-images.md no longer states the pickle's size"
    total, weights, per_image = (int(g.replace(",", "")) for g in found.groups())
    files, labels = read_support_folder(samples.copy_to("omniglot", tmp_path / "samples") / "support")
    clf = FewShotClassifier("omniglot-5way").fit(files, labels)
    assert sum(v.nbytes for v in clf.params_.values()) == weights
    assert clf.transform(files[:1]).nbytes == per_image
    assert abs(len(pickle.dumps(clf)) - total) <= 0.01 * total, len(pickle.dumps(clf))


def test_a_run_whose_latest_checkpoint_is_unusable_gives_its_previous_one_with_a_warning(tiny_run, tiny_classes,
                                                                                         tiny_run_on_previous):
    run, previous = tiny_run_on_previous
    sx, sy, qx, _ = _task(tiny_classes, TEST[:3])
    with pytest.warns(UserWarning, match=f"continuing from the previous checkpoint.*meta-iteration {previous}"):
        clf = FewShotClassifier(run).load()
    np.testing.assert_array_equal(clf.fit(sx, sy).predict_proba(qx),  # read once: fit warns no more
                                  FewShotClassifier(tiny_run).fit(sx, sy).predict_proba(qx))
