"""fometa.FewShotClassifier in scikit-learn's hands: clone, tags, Pipeline, cross_val_score, GridSearchCV, joblib.

Needs scikit-learn (``pip install -e ".[sklearn]"``; skipped without it). The classifier's own checks, and
``import fometa`` without scikit-learn, are in tests/test_fewshot.py. The search on real Omniglot test
characters needs the official zips (``FOMETA_DATA_DIR``) and the shipped ``omniglot-5way`` model.
"""
import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fometa import pretrained
from fometa.fewshot import FewShotClassifier, NotFittedError

sklearn = pytest.importorskip("sklearn")
pytest.importorskip("PIL")

# imported after the skips above, so that the module skips without scikit-learn (E402 allowed in pyproject.toml)
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.exceptions import SkipTestWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks, get_tags
from sklearn.utils.validation import check_is_fitted

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FOMETA_DATA_DIR") or "FOMETA_DATA_DIR-is-not-set")


def _few_shot_set(classes, names, per_class):
    """``(X (N, 12, 12), y)``: the first ``per_class`` examples of each of the test classes ``names``."""
    x = np.concatenate([classes["test"][n][:per_class] for n in names])
    return x, np.repeat(names, per_class)


def test_clone_is_an_unfitted_copy_of_the_parameters(tiny_run, tiny_classes):
    x, y = _few_shot_set(tiny_classes, ["s00", "s01", "s02"], 2)
    clf = FewShotClassifier(tiny_run, steps=9, mode="transductive", seed=1).fit(x, y)
    copy = clone(clf)
    assert type(copy) is FewShotClassifier and copy is not clf
    assert copy.get_params() == clf.get_params() and vars(copy) == clf.get_params()
    assert not hasattr(copy, "params_") and not hasattr(copy, "classes_")
    with pytest.raises(NotFittedError):
        copy.predict(x)
    np.testing.assert_array_equal(copy.fit(x, y).predict_proba(x), clf.predict_proba(x))
    copy.set_params(steps=0)
    assert clf.steps == 9, "set_params on a clone changed the original"


def test_a_classifier_of_images_by_its_tags(tiny_run):
    clf = FewShotClassifier(tiny_run)
    assert is_classifier(clf)
    tags = get_tags(clf)
    assert tags.estimator_type == "classifier" and tags.target_tags.required and tags.requires_fit
    assert not tags.input_tags.two_d_array and tags.input_tags.three_d_array and tags.input_tags.string
    old = clf._more_tags()  # scikit-learn before 1.6: the same tags as it spelled them
    assert old["requires_y"] and "2darray" not in old["X_types"] and "3darray" in old["X_types"]
    assert FewShotClassifier._estimator_type == "classifier"


def test_check_estimator_skips_the_tabular_checks_saying_why_and_the_api_checks_pass(tiny_run):
    clf = FewShotClassifier(tiny_run)
    with pytest.warns(SkipTestWarning, match="Can't test estimator FewShotClassifier which requires input"):
        estimator_checks.check_estimator(clf)
    # the checks of the API that need no 2-D data, one by one
    for check in ("check_estimator_cloneable", "check_estimator_tags_renamed", "check_valid_tag_types",
                  "check_estimator_repr", "check_no_attributes_set_in_init", "check_get_params_invariance",
                  "check_set_params", "check_parameters_default_constructible", "check_estimators_unfitted"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkipTestWarning)
            getattr(estimator_checks, check)("FewShotClassifier", clf)


def test_not_fitted_is_scikit_learns_error_too(tiny_run):
    with pytest.raises(SklearnNotFittedError, match="not fitted yet") as info:
        FewShotClassifier(tiny_run).predict_proba(np.zeros((1, 12, 12), np.uint8))
    assert isinstance(info.value, NotFittedError) and isinstance(info.value, ValueError)


def test_a_sparse_matrix_is_a_type_error(tiny_run, tiny_classes):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    x, y = _few_shot_set(tiny_classes, ["s00", "s01", "s02"], 2)
    with pytest.raises(TypeError, match="X is a sparse matrix"):
        FewShotClassifier(tiny_run).fit(scipy_sparse.csr_matrix(x.reshape(len(x), -1)), y)


@pytest.mark.parametrize("scoring", [None, "neg_log_loss"])
def test_cross_val_score_on_a_few_shot_set_is_fit_and_score_per_fold(tiny_run, tiny_classes, scoring):
    x, y = _few_shot_set(tiny_classes, ["s03", "s04", "s05"], 6)
    clf = FewShotClassifier(tiny_run, steps=20, seed=2)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(clf, x, y, cv=cv, scoring=scoring)
    assert scores.shape == (3,)
    for score, (train, test) in zip(scores, cv.split(x, y), strict=True):  # what scikit-learn did, done by hand
        fitted = FewShotClassifier(tiny_run, steps=20, seed=2).fit(x[train], y[train])
        if scoring is None:
            expected = fitted.score(x[test], y[test])
        else:
            p = fitted.predict_proba(x[test])[np.arange(len(test)), np.searchsorted(fitted.classes_, y[test])]
            expected = float(np.mean(np.log(p)))
        assert score == pytest.approx(expected, rel=1e-12, abs=1e-12)
    if scoring is None:
        assert scores.mean() > 0.5, f"3-way accuracy {scores} is hardly above chance (1/3)"


def test_cross_val_score_takes_a_list_of_image_files(tiny_run, tiny_classes, tmp_path):
    from PIL import Image

    x, y = _few_shot_set(tiny_classes, ["s00", "s02", "s04"], 4)
    files = []
    for i, a in enumerate(x):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(a).save(files[-1])
    cv = StratifiedKFold(2)
    clf = FewShotClassifier(tiny_run, steps=10)
    np.testing.assert_array_equal(cross_val_score(clf, files, y, cv=cv), cross_val_score(clf, x, y, cv=cv))


def _rows_to_images(rows):
    """The pipeline's preprocessing: flat rows of 144 pixels back into 12x12 images."""
    return np.asarray(rows).reshape(len(rows), 12, 12)


def test_a_pipeline_with_a_preprocessing_step(tiny_run, tiny_classes, tmp_path):
    import joblib

    x, y = _few_shot_set(tiny_classes, ["s01", "s03", "s05"], 3)
    q = np.concatenate([tiny_classes["test"][n][-4:] for n in ("s01", "s03", "s05")])
    rows, q_rows = x.reshape(len(x), -1), q.reshape(len(q), -1)  # a tabular X, one image per row
    with pytest.raises(ValueError, match="2-D array .* reshape the rows"):
        FewShotClassifier(tiny_run).fit(rows, y)
    pipe = Pipeline([("images", FunctionTransformer(_rows_to_images)), ("fewshot", FewShotClassifier(tiny_run))])
    expected = FewShotClassifier(tiny_run).fit(x, y).predict_proba(q)
    np.testing.assert_array_equal(pipe.fit(rows, y).predict_proba(q_rows), expected)
    assert list(pipe.classes_) == ["s01", "s03", "s05"] and is_classifier(pipe)
    again = clone(pipe).set_params(fewshot__steps=0)
    assert again.get_params()["fewshot__steps"] == 0 and pipe.get_params()["fewshot__steps"] is None
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "pipe.joblib").predict_proba(q_rows), expected)


@pytest.mark.parametrize("mode", ["per-query", "transductive"])
def test_pickle_and_joblib_round_trips_predict_bit_for_bit(tiny_run, tiny_classes, tmp_path, mode):
    import pickle

    import joblib

    x, y = _few_shot_set(tiny_classes, ["s00", "s02", "s04"], 2)
    q = np.concatenate([tiny_classes["test"][n][-5:] for n in ("s00", "s02", "s04")])
    clf = FewShotClassifier(tiny_run, mode=mode, steps=30, seed=6).fit(x, y)
    expected = clf.predict_proba(q)
    joblib.dump(clf, tmp_path / "clf.joblib")
    by_joblib = joblib.load(tmp_path / "clf.joblib")
    by_pickle = pickle.loads(pickle.dumps(clf, protocol=pickle.HIGHEST_PROTOCOL))
    for loaded in (by_joblib, by_pickle):
        assert loaded is not clf and loaded.get_params() == clf.get_params()
        np.testing.assert_array_equal(loaded.classes_, clf.classes_)
        np.testing.assert_array_equal(loaded.predict_proba(q), expected)
        np.testing.assert_array_equal(loaded.predict(q), clf.predict(q))
        check_is_fitted(loaded)  # raises if scikit-learn took it for unfitted
    np.testing.assert_array_equal(clone(by_joblib).fit(x, y).predict_proba(q), expected)


# -- a search on real Omniglot test characters --------------------------------------------------------------
@pytest.fixture(scope="module")
def omniglot_test_drawings():
    """``(X, y)``: 6 drawings (PNG bytes, as in the official zip) of each of 5 Omniglot test characters of the
    paper split (seed 0), which the shipped models never saw."""
    archive = DATA_DIR / "omniglot" / "images_evaluation.zip"
    if not archive.is_file():
        pytest.skip(f"raw Omniglot not found ({archive}): set FOMETA_DATA_DIR to the folder holding "
                    "omniglot/images_evaluation.zip")
    model = pretrained.get("omniglot-5way")
    if not model.available:
        pytest.skip(f"the shipped omniglot-5way model is not there ({model.status()})")
    test = json.loads((REPO / "datasets" / "splits" / "omniglot_paper_seed0.json").read_text())["test"]
    rng = np.random.default_rng(3)
    with zipfile.ZipFile(archive) as z:
        drawings = {}  # "Alphabet/characterNN" -> its PNG members, sorted
        for member in sorted(m for m in z.namelist() if m.endswith(".png")):
            drawings.setdefault(member.split("/", 1)[1].rsplit("/", 1)[0], []).append(member)
        chosen = sorted(rng.choice(sorted(set(test) & set(drawings)), size=5, replace=False))
        x = [z.read(m) for c in chosen for m in drawings[c][:6]]
        y = [str(c) for c in chosen for _ in drawings[c][:6]]
    return x, np.array(y)


def test_grid_search_over_steps_on_omniglot_test_characters(omniglot_test_drawings):
    x, y = omniglot_test_drawings
    search = GridSearchCV(FewShotClassifier("omniglot-5way"), {"steps": [0, 50]},
                          cv=StratifiedKFold(3, shuffle=True, random_state=0))
    search.fit(x, y)
    results = search.cv_results_
    scores = {int(k): float(v) for k, v in zip(results["param_steps"], results["mean_test_score"], strict=True)}
    print(f"GridSearchCV on 5 Omniglot test characters, 4 shots: mean accuracy by steps {scores}")
    assert search.best_params_ == {"steps": 50}, scores
    assert scores[50] >= 0.8 and scores[0] < scores[50], scores
    assert isinstance(search.best_estimator_, FewShotClassifier) and search.best_estimator_.n_classes_ == 5
    assert search.score(x, y) >= 0.9  # refitted on all 30 drawings with 50 steps
