"""The Section 6 experiments: their configurations, and both commands end to end on tiny budgets.

Synthetic class-indexed data checks the machinery cheaply (and that mini-batches overlap exactly
as each configuration says); the real Omniglot (``FOMETA_DATA_DIR``) runs the CLI commands (skipped
with a reason when the archives are absent).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from fometa import cli, meta
from fometa.experiments import combinations, common, fomaml_tail
from fometa.tasks import ArrayClasses

TINY = common.config({"meta_iters": 2, "eval_interval": 1, "interval_tasks": 2})


def synthetic_splits(train_classes=8, test_classes=6, examples=20, seed=0):
    """Random 28x28 'characters' whose first pixel is a unique example id (to trace overlaps)."""
    rng = np.random.default_rng(seed)

    def split(classes, offset):
        out = []
        for c in range(classes):
            x = rng.random((examples, 28, 28), dtype=np.float32)
            x[:, 0, 0] = offset + c * examples + np.arange(examples)
            out.append(x)
        return ArrayClasses(out)

    return {"train": split(train_classes, 0), "test": split(test_classes, 10_000)}


def _ids(x):
    return set(np.asarray(x)[:, 0, 0].astype(int).tolist())


def _learner(curve):
    return common.make_learner(curve, common.config({"meta_iters": 10}))


def test_combination_curves_are_the_papers():
    curves = {c.name: c for c in combinations.make_curves()}
    assert list(curves) == ["g1", "g1+g2", "(g1+g2)/2", "g2", "g1+g2+g3", "(g1+g2+g3)/3", "g3",
                            "g1+g2+g3+g4", "(g1+g2+g3+g4)/4", "g4"], "not the ten curves of the paper's figure"
    for c in curves.values():
        k = c.fields["k"]
        expected = {"first": ((1.0,), 0.25), "sum": ((1.0,) * k, 0.25), "average": ((1.0 / k,) * k, 0.25 / k),
                    "last": ((0.0,) * (k - 1) + (1.0,), 0.25)}[c.fields["kind"]]
        assert (c.weights, c.meta_step) == expected, f"{c.name}: weights/meta-step {c.weights}, {c.meta_step}"
        inner, outer = c.run_config(TINY).inner, c.run_config(TINY).outer
        assert (inner.shots, inner.batch, inner.iters, outer.meta_batch) == (5 * k, 25, k, 1), c.name


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_combination_mini_batches_never_overlap(k):
    splits = synthetic_splits()
    curve = next(c for c in combinations.make_curves() if c.fields["k"] == k)
    (task,) = _learner(curve).sample(splits["train"], np.random.default_rng(k))
    ids = [_ids(x) for x, _ in task]
    assert all(len(s) == 25 for s in ids), "a mini-batch repeats an example"
    assert len(set().union(*ids)) == 25 * k, "mini-batches overlap"


def test_fomaml_tail_batches_are_shared_or_separate():
    splits = synthetic_splits()
    for curve in fomaml_tail.make_curves(iters=(4,)):
        (task,) = _learner(curve).sample(splits["train"], np.random.default_rng(0))
        ids = [_ids(x) for x, _ in task]
        earlier, last = set().union(*ids[:-1]), ids[-1]
        assert len(ids) == 4 and all(len(s) == 25 for s in ids), curve.name
        if curve.fields["algorithm"] == "fomaml-separate":
            assert not earlier & last, "the separate tail overlaps the earlier mini-batches"
        else:
            assert last == earlier, f"{curve.name}: every batch should be the whole 5-shot task"
    assert isinstance(_learner(fomaml_tail.make_curves(iters=(2,))[0]).algorithm, meta.Reptile)


@pytest.mark.parametrize("module", [combinations, fomaml_tail])
def test_experiment_runs_on_synthetic_data(module, tmp_path):
    splits = synthetic_splits()
    if module is combinations:
        curves = combinations.select((2,))
    else:
        curves = fomaml_tail.select((2,), ["reptile", "fomaml-separate"])
    with common.JsonLog(tmp_path / "log.jsonl") as log:
        records = module.run(splits, log, TINY, curves)
    lines = common.read_log(tmp_path / "log.jsonl")
    assert lines[0]["event"] == "start" and lines[-1]["event"] == "done", "the log must open and close"
    assert [r for r in lines if r["event"] == "eval"] == records, "the log holds what run() returned"
    by_curve = common.curves_of(records)
    assert list(by_curve) == [c.name for c in curves]
    for name, rs in by_curve.items():
        assert [r["iteration"] for r in rs] == [0, 1, 2], name
        assert all(0.0 <= r["accuracy"] <= 1.0 for r in rs), name
    initial = {rs[0]["accuracy"] for rs in by_curve.values()}
    assert len(initial) == 1, "every curve starts from the same initialization, evaluated on the same tasks"
    first, second = list(by_curve.values())[:2]
    assert all(len(r["per_task_loss"]) == TINY.interval_tasks for r in records)
    assert common.paired_difference(first[0], second[0]) == (0.0, 0.0), "iteration 0 is one evaluation, shared"
    mean, _ = common.paired_difference(first[-1], second[-1], "accuracy")
    assert np.isclose(mean, first[-1]["accuracy"] - second[-1]["accuracy"])
    pytest.importorskip("matplotlib")
    module.plot(records, tmp_path / "figure.png")
    assert (tmp_path / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(module.summary(records)) == len(curves)
    pairs = module.comparisons(records)
    assert pairs and all(np.isfinite(c["loss_diff"]) for c in pairs), "no paired comparison was made"


def test_evaluation_is_fometa_evaluate():
    """The experiments' evaluation reports fometa.evaluate's accuracy on the same tasks, plus the query loss."""
    from fometa import evaluate, models, optim

    splits = synthetic_splits()
    model = models.omniglot_cnn(5)
    params = model.init(np.random.default_rng(0))
    budget = common.config({"meta_iters": 1, "eval_interval": 1, "interval_tasks": 5, "eval.chunk": 2})
    learner = _learner(combinations.make_curves()[0])
    ours = common.evaluate_params(learner, params, splits["test"], budget, eval_seed=1)
    theirs = evaluate.evaluate(model, params, splits["test"], np.random.default_rng(1), budget.eval,
                               optim.SGD(0.003), tasks=5, chunk=2)
    assert (ours.accuracy, ours.ci95) == (theirs.accuracy, theirs.ci95)
    assert np.isfinite(ours.loss) and ours.loss > 0


def test_budget_rejects_nonsense(tmp_path):
    with pytest.raises(ValueError, match="interval_tasks"):
        common.config({"meta_iters": 1, "eval_interval": 1, "interval_tasks": 1})
    budget = common.config({"meta_iters": 5, "eval_interval": 2, "interval_tasks": 2})
    with common.JsonLog(tmp_path / "log.jsonl") as log:
        records = combinations.run(synthetic_splits(), log, budget, combinations.make_curves(ks=()))
    assert [r["iteration"] for r in records] == [0, 2, 4, 5]


# -- the commands, end to end on the real Omniglot ------------------------------------------------
def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_combinations_command_on_real_omniglot(real_omniglot, tmp_path, capsys):
    folder, cache = real_omniglot
    # --data is the folder of the archives; --out already holds their packed copy, which is reused
    rc = cli.main(["experiment", "combinations", "--data", str(folder), "--out", str(cache), "--quiet",
                   "--meta-iters", "1", "--eval-interval", "1", "--interval-tasks", "2", "--ks", "2", "--curves",
                   "g1+g2,g2"])
    assert rc == 0
    summary = _last_json(capsys.readouterr().out)
    assert [r["curve"] for r in summary["final"]] and {r["curve"] for r in summary["final"]} == {"g1+g2", "g2"}
    records = common.read_log(summary["log"])
    assert sum(r["event"] == "eval" for r in records) == 4, "two curves, evaluated at iterations 0 and 1"
    if summary["plot"] is not None:
        assert (cache / "combinations.png").stat().st_size > 0


def test_fomaml_tail_command_on_real_omniglot(real_omniglot, tmp_path, capsys):
    _, cache = real_omniglot
    rc = cli.main(["experiment", "fomaml-tail", "--data", str(cache / "omniglot.h5"), "--out", str(tmp_path), "--quiet",
                   "--meta-iters", "1", "--eval-interval", "1", "--interval-tasks", "2", "--ks", "2",
                   "--curves", "fomaml-shared,fomaml-separate", "--no-plot"])
    assert rc == 0
    summary = _last_json(capsys.readouterr().out)
    assert {r["curve"] for r in summary["final"]} == {"fomaml-shared k=2", "fomaml-separate k=2"}
    assert (tmp_path / "fomaml-tail.jsonl").is_file() and not (tmp_path / "fomaml-tail.png").exists()


def test_command_errors_are_one_line(tmp_path, capsys):
    rc = cli.main(["experiment", "combinations", "--data", str(tmp_path / "missing.h5"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("fometa: error:") and len(err.strip().splitlines()) == 1, err
    rc = cli.main(["experiment", "combinations", "--curves", "g7", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown curves" in err, err
