"""The training loop on small in-memory data: exact resume, logs, signals, non-finite losses, data checks."""
import json
import os
import signal

import numpy as np
import pytest

from fometa import checkpoint
from fometa import config as C
from fometa import train as T
from fometa.build import check_data
from fometa.data import ArraySplit
from fometa.runfolder import RunFolder

QUIET = T.TrainOptions(progress=False)


def _quiet_until(stop_at):
    return T.TrainOptions(progress=False, stop_at=stop_at)


def _splits(seed=0, classes=(12, 8), examples=8, nan=False):
    rng = np.random.default_rng(seed)
    out = {}
    for name, n in zip(("train", "test"), classes, strict=True):
        arrays = [rng.random((examples, 28, 28), dtype=np.float32) for _ in range(n)]
        if nan:
            arrays = [np.full_like(a, np.nan) for a in arrays]
        out[name] = ArraySplit(arrays)
    return out


def _cfg(**overrides) -> C.RunConfig:
    base = {"model.filters": 4, "inner.iters": 2, "inner.shots": 4, "inner.batch": 8, "eval.inner_iters": 3,
            "interval_tasks": 4, "meta_iters": 12, "eval_interval": 4, "checkpoint_every": 5}
    return C.apply_overrides(C.preset("omniglot-5way-1shot"), {**base, **overrides})


def _same_params(a, b):
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def _metrics(run):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in RunFolder(run).read_log()]


def test_a_run_writes_log_and_final_checkpoint(tmp_path):
    cfg = _cfg()
    result = T.train(cfg, tmp_path, _splits(), options=QUIET)
    assert (result.status, result.iteration) == ("finished", 12)
    ck = checkpoint.load(tmp_path / "checkpoint.h5")
    assert ck.iteration == 12 and C.from_dict(ck.config) == cfg
    log = RunFolder(tmp_path).read_log()
    assert [r["iteration"] for r in log] == [0, 4, 8, 12]
    for r in log[1:]:
        assert {"loss_first", "loss_last", "train_accuracy", "test_accuracy", "meta_step", "seconds"} <= set(r)
        assert 0.0 <= r["train_accuracy"] <= 1.0
    assert log[-1]["meta_step"] == 0.0  # annealed to 0 over the run


@pytest.mark.parametrize("stop_at", [5, 10])
def test_resumed_run_equals_uninterrupted_run_bit_for_bit(tmp_path, stop_at):
    cfg = _cfg()
    T.train(cfg, tmp_path / "full", _splits(), options=QUIET)
    stopped = T.train(cfg, tmp_path / "part", _splits(), options=_quiet_until(stop_at))
    assert (stopped.status, stopped.iteration) == ("stopped", stop_at)
    ck = checkpoint.load(tmp_path / "part" / "checkpoint.h5")
    assert ck.iteration == stop_at
    # log lines written after the checkpoint (as by a run killed later) are dropped on resume
    RunFolder(tmp_path / "part").append_log({"iteration": stop_at + 1, "train_accuracy": 0.0})
    result = T.train(cfg, tmp_path / "part", _splits(), resume=ck, options=QUIET)
    assert result.iteration == 12
    full = checkpoint.load(tmp_path / "full" / "checkpoint.h5")
    part = checkpoint.load(tmp_path / "part" / "checkpoint.h5")
    assert _same_params(full.params, part.params)
    assert _same_params(full.inner_state.nu, part.inner_state.nu)
    assert int(full.inner_state.count) == int(part.inner_state.count)
    assert full.rng_state == part.rng_state
    # 10 falls between evaluations: the interval's loss sums travel in the checkpoint
    assert _metrics(tmp_path / "full") == _metrics(tmp_path / "part")


def test_evaluation_settings_do_not_change_what_is_trained(tmp_path):
    """Evaluation draws from generators of its own: the 1-shot and 5-shot presets train the same network."""
    T.train(_cfg(), tmp_path / "a", _splits(), options=QUIET)
    T.train(_cfg(eval_interval=1, interval_tasks=7, checkpoint_every=0, **{"eval.shots": 5}), tmp_path / "b",
            _splits(), options=QUIET)
    a, b = (checkpoint.load(tmp_path / r / "checkpoint.h5") for r in "ab")
    assert _same_params(a.params, b.params)


def test_finished_run_is_not_trained_further(tmp_path):
    cfg = _cfg(meta_iters=3)
    T.train(cfg, tmp_path, _splits(), options=QUIET)
    ck = checkpoint.load(tmp_path / "checkpoint.h5")
    assert T.train(cfg, tmp_path, _splits(), resume=ck, options=QUIET).status == "already finished"


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = _cfg(meta_iters=5)
    T.train(cfg, tmp_path, _splits(), options=QUIET)
    before = (tmp_path / "checkpoint.h5").read_bytes()
    longer = C.apply_overrides(cfg, {"meta_iters": 9})
    ck = checkpoint.load(tmp_path / "checkpoint.h5")
    with pytest.raises(T.TrainingError,
                       match=r"non-finite loss at meta-iteration 6 .*checkpoint.h5 at iteration 5, is kept"):
        T.train(longer, tmp_path, _splits(nan=True), resume=ck, options=QUIET)
    assert (tmp_path / "checkpoint.h5").read_bytes() == before


def test_non_finite_loss_before_any_checkpoint(tmp_path):
    with pytest.raises(T.TrainingError, match="no checkpoint had been written yet"):
        T.train(_cfg(), tmp_path, _splits(nan=True), options=QUIET)
    assert not (tmp_path / "checkpoint.h5").exists()


class _SignalingSplit(ArraySplit):
    """Sends ``signum`` to this process on the ``at``-th example read (mid-iteration)."""

    def __init__(self, arrays, signum, at):
        super().__init__(arrays)
        self.signum, self.at, self.reads = signum, at, 0

    def get(self, c, indices):
        self.reads += 1
        if self.reads == self.at:
            os.kill(os.getpid(), self.signum)
        return super().get(c, indices)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_the_iteration_writes_a_checkpoint_and_returns(tmp_path, signum):
    splits = _splits()
    train = splits["train"]
    # 5 classes x meta-batch 5 = 25 reads per iteration: the signal arrives during iteration 3
    splits["train"] = _SignalingSplit([train.get(c, np.arange(8)) for c in range(len(train))], signum, at=60)
    handler = signal.getsignal(signum)
    result = T.train(_cfg(checkpoint_every=0, eval_interval=0), tmp_path, splits, options=QUIET)
    assert (result.status, result.iteration, result.signal) == ("interrupted", 3, signal.Signals(signum).name)
    assert checkpoint.load(tmp_path / "checkpoint.h5").iteration == 3
    assert signal.getsignal(signum) is handler, "the signal handler was not restored"


def test_data_checks_name_the_problem():
    with pytest.raises(C.ConfigError, match="evaluation needs 9 shots \\+ 1 query per class, "
                                            "but a class of the train split has only 8"):
        check_data(_cfg(**{"eval.shots": 9}), _splits())
    with pytest.raises(C.ConfigError, match="training tasks need 9 train shots per class, but .* only 8 examples"):
        check_data(_cfg(**{"inner.shots": 9}), _splits())
    with pytest.raises(C.ConfigError, match="a 10-way task needs 10 classes, but the test split has 8"):
        check_data(_cfg(**{"model.ways": 10}), _splits())


def test_sine_preset_trains_and_logs_mse(tmp_path):
    cfg = C.apply_overrides(C.preset("sine"), {"meta_iters": 20, "eval_interval": 10, "interval_tasks": 5})
    result = T.train(cfg, tmp_path, None, options=QUIET)
    assert result.status == "finished"
    log = RunFolder(tmp_path).read_log()
    assert [r["iteration"] for r in log] == [0, 10, 20]
    assert all(r["test_mse"] > 0 and "test_accuracy" not in r for r in log)


def test_sine_learner_matches_fometa_sine(tmp_path):
    """The sine preset in a run folder trains exactly what ``fometa sine`` trains in memory."""
    from fometa.experiments import sine_wave

    cfg = C.apply_overrides(C.preset("sine"), {"meta_iters": 15, "eval_interval": 0})
    T.train(cfg, tmp_path, None, options=QUIET)
    ref = T.train(sine_wave.config(meta_iters=15), None, None, options=QUIET).state.params
    assert _same_params(ref, checkpoint.load(tmp_path / "checkpoint.h5").params)


def test_progress_bar_lines_when_not_a_terminal():
    import io

    from fometa.progress import ProgressBar, format_duration

    stream = io.StringIO()
    now = [0.0]
    bar = ProgressBar(100, initial=20, label="it", stream=stream, log_interval=30, clock=lambda: now[0])
    for t, count, values in [(0, 20, {}), (10, 30, {"train_acc": 0.5}), (20, 60, {}), (40, 80, {"test_acc": 0.25})]:
        now[0] = t
        bar.update(count, **values)  # a line at t=0, then none until 30 s have passed
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "80/100" in lines[1] and "1.50 it/s" in lines[1] and "ETA 13.3s" in lines[1]
    assert "train_acc 0.5 test_acc 0.25" in lines[1]
    assert (format_duration(75), format_duration(4000), format_duration(float("nan"))) == ("1m15s", "1h06m", "?")


def test_config_file_of_a_run_round_trips(tmp_path):
    cfg = _cfg()
    RunFolder(tmp_path).write_config(cfg)
    assert RunFolder(tmp_path).read_config() == cfg
    assert json.loads((tmp_path / "config.json").read_text())["inner"]["shots"] == 4


def test_progress_bar_redraws_in_place_on_a_terminal():
    import io

    from fometa.progress import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream, now = Terminal(), [0.0]
    bar = ProgressBar(10, label="eval", unit="tasks", stream=stream, clock=lambda: now[0])
    for i in range(1, 11):
        now[0] = i * 0.0625  # redraws at most every 0.1 s: at i = 1, 3, 5, 7, 9
        bar.update(i)
    bar.close()
    text = stream.getvalue()
    assert "\n" not in text[:-1] and text.endswith("\n") and text.count("\r") == 6
    assert "10/10" in text.rsplit("\r", 1)[-1] and "16 tasks/s" in text.rsplit("\r", 1)[-1]


def _cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_two_damaged_checkpoints_in_a_row_still_leave_a_good_one_to_continue_from(tmp_path):
    """A damaged latest checkpoint is set aside, never rotated into the fallback: after a resume from
    ``checkpoint.prev.h5`` and one save, a second damaged latest still finds the good fallback, and the run
    ends where an uninterrupted one ends."""
    cfg = _cfg(checkpoint_every=2)
    T.train(cfg, tmp_path / "full", _splits(), options=QUIET)
    run = RunFolder(tmp_path / "part")
    T.train(cfg, run.path, _splits(), options=_quiet_until(6))  # checkpoints at 2, 4 and 6
    _cut_in_half(run.checkpoint_path)
    ck, note = run.load_checkpoint(set_aside=True)
    assert ck.iteration == 4, note
    assert "moved it aside to" in note and "checkpoint.damaged.h5" in note and "meta-iteration 4" in note
    assert run.damaged_checkpoint_path.exists() and not run.checkpoint_path.exists()
    T.train(cfg, run.path, _splits(), resume=ck, options=_quiet_until(6))  # one save past the resume, at 6
    assert checkpoint.load(run.previous_checkpoint_path).iteration == 4, "the fallback was replaced"
    _cut_in_half(run.checkpoint_path)  # the second fault
    ck, note = run.load_checkpoint(set_aside=True)
    assert ck.iteration == 4 and "continuing from the previous checkpoint" in note
    result = T.train(cfg, run.path, _splits(), resume=ck, options=QUIET)
    assert (result.status, result.iteration) == ("finished", 12)
    full, part = (checkpoint.load(RunFolder(tmp_path / r).checkpoint_path) for r in ("full", "part"))
    assert _same_params(full.params, part.params)
    assert _same_params(full.inner_state.mu, part.inner_state.mu) and full.rng_state == part.rng_state


class _Rank1(T.distributed.Single):
    """A second rank of a one-process stand-in world: its collectives are the identity, it is not the root."""

    rank = 1

    @property
    def is_root(self) -> bool:
        return False


def test_the_run_writer_writes_on_rank_0_alone(tmp_path):
    cfg = _cfg()
    learner = T.build.build_learner(cfg)
    state = learner.init(learner.model.init(np.random.default_rng(0)))
    rng = np.random.default_rng(1)
    for comm, folder in ((_Rank1(), tmp_path / "rank1"), (T.distributed.Single(), tmp_path / "rank0")):
        writer = T.RunWriter(RunFolder(folder), comm)
        assert writer.start(cfg, None) == {}
        writer.log({"iteration": 0})
        writer.checkpoint(cfg, state, rng, {"seconds": 0.0})
        writer.segment(0, 1, 0.5, "finished")
        assert writer.last_checkpoint == 0 and writer.records == []
    assert not (tmp_path / "rank1").exists(), "a rank other than 0 wrote in the run folder"
    run = RunFolder(tmp_path / "rank0")
    assert run.read_config() == cfg and run.read_log() == [{"iteration": 0}]
    assert checkpoint.load(run.checkpoint_path).iteration == 0
    assert len(run.read_segments()) == 1
    seen = []
    memory = T.RunWriter(None, on_log=seen.append)
    memory.log({"iteration": 3})
    assert memory.records == seen == [{"iteration": 3}] and "no checkpoint" in memory.kept()
