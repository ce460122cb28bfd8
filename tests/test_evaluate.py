"""Evaluation: accuracy with a 95% CI, and the three batch-norm modes behaving as documented."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fometa import evaluate as E
from fometa import models, optim, tree
from fometa.tasks import ArrayClasses

NET = models.conv_net("tiny", 3, (6, 6), filters=4, blocks=2, stride=2)


def _params(seed, tasks):
    rng = np.random.default_rng(seed)
    p = tree.broadcast(tree.astype(NET.init(rng), np.float64), tasks)
    return tree.map(lambda v: v + 0.1 * rng.standard_normal(v.shape), p)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), tasks=st.integers(1, 3), support=st.integers(1, 5), queries=st.integers(2, 4))
def test_modes_isolate_queries_exactly_as_documented(seed, tasks, support, queries):
    rng = np.random.default_rng(seed)
    p = _params(seed, tasks)
    sx = rng.random((tasks, support, 6, 6))
    qx = rng.random((tasks, queries, 6, 6))
    changed = qx.copy()
    changed[:, 1:] = rng.random(changed[:, 1:].shape)  # every query but the first
    for mode in ("per-query", "support-stats"):
        a = E.predict(NET, p, sx, qx, mode)[:, 0]
        b = E.predict(NET, p, sx, changed, mode)[:, 0]
        np.testing.assert_array_equal(a, b, err_msg=f"{mode}: query 0's prediction depends on other queries")
    a = E.predict(NET, p, sx, qx, "transductive")[:, 0]
    b = E.predict(NET, p, sx, changed, "transductive")[:, 0]
    assert not np.allclose(a, b), "transductive predictions should share batch statistics among the queries"


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), support=st.integers(1, 5))
def test_per_query_uses_the_query_in_its_statistics_and_support_stats_does_not(seed, support):
    rng = np.random.default_rng(seed)
    p = _params(seed, 1)
    sx = rng.random((1, support, 6, 6))
    qx = rng.random((1, 1, 6, 6))
    # support-stats: the query is normalized with statistics of the support set alone, so its
    # logits equal those of a pass whose batch is the support set plus the query with stats_batch
    ref = NET.forward(p, np.concatenate([sx, qx], axis=1), stats_batch=support)[:, -1]
    np.testing.assert_allclose(E.predict(NET, p, sx, qx, "support-stats")[:, 0], ref, rtol=1e-12)
    # per-query: the plain batch of support + query, whose statistics include the query
    plain = NET.forward(p, np.concatenate([sx, qx], axis=1))[:, -1]
    np.testing.assert_allclose(E.predict(NET, p, sx, qx, "per-query")[:, 0], plain, rtol=1e-12)
    assert not np.allclose(ref, plain), "support-stats and per-query should differ"


def _separable(rng, classes=6, per_class=8):
    """Classes that are easy to tell apart: a fixed random image each, plus a little noise."""
    protos = rng.random((classes, 6, 6)).astype(np.float32)
    return ArrayClasses([protos[c] + 0.3 * rng.standard_normal((per_class, 6, 6)).astype(np.float32)
                         for c in range(classes)])


def test_evaluate_learns_separable_tasks_and_reports_a_ci():
    rng = np.random.default_rng(0)
    ds = _separable(rng)
    params = NET.init(rng)
    cfg = E.EvaluationConfig(shots=2, inner_batch=6, inner_iters=30)
    res = E.evaluate(NET, params, ds, np.random.default_rng(1), cfg, optim.Adam(0.01), tasks=40, chunk=16,
                     modes=E.MODES)
    assert set(res) == set(E.MODES)
    for mode, r in res.items():
        assert r.tasks == 40 and r.per_task.shape == (40,) and r.mode == mode
        mean, ci = E.mean_ci95(r.per_task)
        assert r.accuracy == mean and r.ci95 == ci and ci > 0
        assert r.accuracy > 0.6, f"{mode}: {r.accuracy} is near chance (1/3) on separable classes"
    d = res["transductive"].as_dict()
    assert {"accuracy", "ci95", "tasks", "mode", "seconds"} <= set(d)


def test_evaluate_does_not_depend_on_the_chunk_size_and_keeps_the_state():
    rng = np.random.default_rng(2)
    ds = _separable(rng)
    params = tree.astype(NET.init(rng), np.float64)
    opt = optim.Adam(0.01)
    state = opt.update(tree.map(np.ones_like, params), opt.init(params))[1]
    before = tree.copy(state.nu)
    cfg = E.EvaluationConfig(shots=1, inner_batch=3, inner_iters=5, mode="per-query")
    a = E.evaluate(NET, params, ds, np.random.default_rng(5), cfg, opt, state, tasks=9, chunk=9)
    b = E.evaluate(NET, params, ds, np.random.default_rng(5), cfg, opt, state, tasks=9, chunk=4)
    np.testing.assert_allclose(a.per_task, b.per_task)
    assert tree.allclose(state.nu, before, rtol=0) and int(state.count) == 1, "evaluation changed the saved state"


def test_resume_from_any_chunk_equals_the_uninterrupted_evaluation(tmp_path):
    rng = np.random.default_rng(3)
    ds = _separable(rng)
    params = NET.init(rng)
    cfg = E.EvaluationConfig(shots=1, inner_batch=3, inner_iters=4)
    opt = optim.Adam(0.01)
    kept = []
    full = E.evaluate(NET, params, ds, np.random.default_rng(7), cfg, opt, tasks=13, chunk=4, modes=E.MODES,
                      on_chunk=kept.append)
    assert [p.done for p in kept] == [4, 8, 12, 13]
    settings = {"seed": 7, "modes": list(E.MODES)}
    for part in kept[:-1]:
        E.save_partial(tmp_path / "p.json", settings, part)  # through the file, as fometa eval --partial
        back = E.load_partial(tmp_path / "p.json", settings)
        assert back.done == part.done and back.rng_state == part.rng_state
        rest = E.evaluate(NET, params, ds, np.random.default_rng(999), cfg, opt, tasks=13, chunk=3, modes=E.MODES,
                          resume=back)  # the kept generator state replaces the one given
        for mode in E.MODES:
            np.testing.assert_array_equal(rest[mode].per_task, full[mode].per_task)
            assert rest[mode].accuracy == full[mode].accuracy
    with pytest.raises(E.PartialError, match="other settings"):
        E.load_partial(tmp_path / "p.json", {"seed": 8, "modes": list(E.MODES)})
    assert E.load_partial(tmp_path / "absent.json", settings) is None
    with pytest.raises(ValueError, match="cannot resume an evaluation of 12 tasks"):
        E.evaluate(NET, params, ds, rng, cfg, opt, tasks=13, modes=("transductive",), resume=kept[2])


def test_mean_ci95():
    v = np.array([1.0, 0.0, 1.0, 1.0])
    mean, ci = E.mean_ci95(v)
    assert mean == 0.75 and ci == pytest.approx(1.96 * v.std(ddof=1) / 2)
    with pytest.raises(ValueError):
        E.mean_ci95([])


def test_config_errors():
    with pytest.raises(ValueError, match="unknown evaluation mode"):
        E.EvaluationConfig(mode="inductive")
    with pytest.raises(ValueError, match="larger than the support set"):
        E.EvaluationConfig(shots=1, inner_batch=10).check_ways(5)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown evaluation mode"):
        E.evaluate(NET, NET.init(rng), _separable(rng), rng, E.EvaluationConfig(shots=1, inner_batch=3, inner_iters=1),
                   optim.SGD(0.1), tasks=1, modes=["x"])


@pytest.mark.parametrize("mode", ["transductive", "per-query", "support-stats"])
def test_predictions_do_not_depend_on_their_blocks(mode, monkeypatch):
    """The queries are predicted in blocks of tasks sized like the inner loop's (a block per task when tasks are
    large): every task's logits are the same in any block."""
    from fometa import inner

    rng = np.random.default_rng(4)
    ds = _separable(rng)
    params = tree.astype(NET.init(rng), np.float32)
    cfg = E.EvaluationConfig(shots=2, inner_batch=4, inner_iters=3, mode=mode)
    logits = {}
    for budget in (1, inner.BLOCK_BYTES):
        seen = []
        monkeypatch.setattr(inner, "BLOCK_BYTES", budget)
        monkeypatch.setattr(E, "_accuracy", lambda z, y, seen=seen: (seen.append(z), (z.argmax(-1) == y).mean(-1))[1])
        E.evaluate(NET, params, ds, np.random.default_rng(6), cfg, optim.Adam(0.01), tasks=7, chunk=7)
        (logits[budget],) = seen
    assert logits[1].shape[0] == 7 and np.array_equal(logits[1], logits[inner.BLOCK_BYTES])
