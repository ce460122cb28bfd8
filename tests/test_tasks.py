"""Task sampling: N-way K-shot draws, mini-batches as the reference cuts them, support/query split."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fometa import tasks as T


def _dataset(classes, per_class, seed=0):
    """Each example holds (class, index) so draws can be traced back."""
    return [np.array([[c, i] for i in range(per_class)], dtype=np.float32) for c in range(classes)]


@given(seed=st.integers(0, 2**32 - 1), ways=st.integers(1, 6), shots=st.integers(1, 5), extra=st.integers(0, 4))
def test_sample_task_respects_ways_and_shots(seed, ways, shots, extra):
    ds = _dataset(ways + extra, shots + 3)
    task = T.sample_task(ds, np.random.default_rng(seed), ways, shots)
    assert task.x.shape == (ways * shots, 2) and task.y.shape == (ways * shots,)
    assert sorted(np.bincount(task.y, minlength=ways)) == [shots] * ways
    assert len(set(task.classes)) == ways
    for label in range(ways):
        rows = task.x[task.y == label]
        assert set(rows[:, 0]) == {task.classes[label]}, "a label mixes classes"
        assert len(set(rows[:, 1])) == shots, "an example was drawn twice"


def test_labels_are_a_random_order_of_classes():
    ds = _dataset(5, 3)
    seen = {T.sample_task(ds, np.random.default_rng(s), 5, 1).classes for s in range(30)}
    assert len(seen) > 5, "class-to-label assignment never changes"


@given(seed=st.integers(0, 2**32 - 1), ways=st.integers(1, 5), shots=st.integers(1, 4), queries=st.integers(1, 3))
def test_support_and_query_never_share_an_example(seed, ways, shots, queries):
    ds = _dataset(ways + 2, shots + queries + 2)
    task = T.sample_task(ds, np.random.default_rng(seed), ways, shots + queries)
    support, query = T.split_support_query(task, queries)
    s = {tuple(r) for r in support.x}
    q = {tuple(r) for r in query.x}
    assert not s & q, "an example is in both support and query"
    assert len(support.y) == ways * shots and len(query.y) == ways * queries
    assert sorted(np.bincount(query.y, minlength=ways)) == [queries] * ways


@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 20), batch=st.integers(1, 20), count=st.integers(0, 12))
def test_mini_batches_without_replacement_cover_epochs(seed, size, batch, count):
    if batch > size:
        with pytest.raises(ValueError, match="larger than the task"):
            T.mini_batches(np.random.default_rng(seed), size, batch, count)
        return
    idx = T.mini_batches(np.random.default_rng(seed), size, batch, count)
    assert idx.shape == (count, batch)
    flat = idx.ravel()
    for e in range(len(flat) // size):  # every complete epoch is a permutation
        assert sorted(flat[e * size : (e + 1) * size]) == list(range(size))


@given(seed=st.integers(0, 2**32 - 1), size=st.integers(2, 20), count=st.integers(1, 8))
def test_mini_batches_with_replacement_are_independent_draws(seed, size, count):
    batch = max(1, size // 2)
    idx = T.mini_batches(np.random.default_rng(seed), size, batch, count, replacement=True)
    assert idx.shape == (count, batch)
    for row in idx:
        assert len(set(row)) == batch, "no repeats within one batch"
        assert row.min() >= 0 and row.max() < size


def test_training_batches_tail_is_disjoint_from_the_rest():
    ds = _dataset(8, 20)
    steps = T.training_batches(ds, np.random.default_rng(0), ways=5, shots=4, batch=5, iters=4, tail_shots=2)
    assert len(steps) == 4 and steps[-1][0].shape == (10, 2)
    head = {tuple(r) for x, _ in steps[:-1] for r in x}
    tail = {tuple(r) for r in steps[-1][0]}
    assert not head & tail, "the tail batch overlaps the earlier mini-batches"


def test_impossible_requests_raise():
    ds = _dataset(3, 4)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="4-way task from a data set of 3 classes"):
        T.sample_task(ds, rng, 4, 1)
    with pytest.raises(ValueError, match="cannot draw 5 examples from class"):
        T.sample_task(ds, rng, 2, 5)
    with pytest.raises(ValueError, match="larger than the task"):
        T.training_batches(ds, rng, ways=2, shots=2, batch=5, iters=1)
    with pytest.raises(ValueError, match="none left for support"):
        T.split_support_query(T.sample_task(ds, rng, 2, 2), 2)
    with pytest.raises(ValueError, match="positive"):
        T.sample_task(ds, rng, 0, 1)


def test_same_seed_same_draws():
    ds = _dataset(10, 10)
    a = T.training_batches(ds, np.random.default_rng(7), ways=5, shots=2, batch=4, iters=3)
    b = T.training_batches(ds, np.random.default_rng(7), ways=5, shots=2, batch=4, iters=3)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_mapping_datasets_are_accepted():
    ds = {"b": np.zeros((3, 2)), "a": np.ones((3, 2))}
    task = T.sample_task(ds, np.random.default_rng(0), 2, 3)
    assert task.x.shape == (6, 2)
    with pytest.raises(ValueError, match="one shape"):
        T.as_class_dataset([np.zeros((2, 2)), np.zeros((2, 3))])
