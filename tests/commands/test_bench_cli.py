"""fometa bench meta / eval: one JSON object per figure, and one-line errors."""
import json
import subprocess
import sys


def _bench(*args):
    return subprocess.run([sys.executable, "-m", "fometa", "bench", *args], capture_output=True, text=True, timeout=600)


def test_bench_meta_prints_one_json_object_per_algorithm_and_mode():
    out = _bench("meta", "--preset", "sine", "--algorithm", "reptile,maml", "--mode", "batched,serial",
                 "--repeat", "2", "--warmup", "0", "--threads", "1", "--json")
    assert out.returncode == 0, out.stderr
    figs = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(f["algorithm"], f["mode"]) for f in figs] == [("reptile", "batched"), ("reptile", "serial"),
                                                          ("maml", "batched"), ("maml", "serial")]
    for f in figs:
        assert f["suite"] == "meta" and f["preset"] == "sine" and f["threads"] == 1 and f["repeat"] == 2
        assert f["median_s"] > 0 and abs(f["iterations_per_s"] - 1 / f["median_s"]) < 1e-6 * f["iterations_per_s"]
        assert f["sgemm_gflops"] > 0
        if f["algorithm"] == "maml":  # second-order: no first-order count, no limit
            assert f["gflop"] is None and f["limit_s"] is None and f["times_limit"] is None
        else:  # the sine net's first-order meta-iteration: 5 steps of 10 points through 1-64-64-1
            assert abs(f["gflop"] * 1e9 - 5 * 2 * 10 * (3 * (64 + 64 * 64 + 64) - 64)) < 1e-3
            assert abs(f["limit_s"] - f["gflop"] / f["sgemm_gflops"]) < 1e-12
            assert abs(f["times_limit"] - f["median_s"] / f["limit_s"]) < 1e-9 * f["times_limit"]


def test_bench_eval_times_chunks_of_tasks():
    out = _bench("eval", "--preset", "omniglot-5way-1shot", "--chunk", "2", "--repeat", "1", "--warmup", "0", "--json")
    assert out.returncode == 0, out.stderr
    (fig,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert fig["suite"] == "eval" and fig["chunk"] == 2 and fig["shots"] == 1 and fig["inner_iters"] == 50
    assert fig["modes"] == ["transductive", "per-query"]
    assert abs(fig["tasks_per_s"] - 2 / fig["median_s"]) < 1e-6 * fig["tasks_per_s"]
    assert fig["gflop"] > 0 and fig["times_limit"] == fig["median_s"] / fig["limit_s"]


def test_bench_times_both_convolutions_in_one_run():
    """--conv winograd,im2col: Mini-ImageNet's network timed both ways, each figure saying which; the
    layers suite's limit uses the rate on as many threads as its tasks can use."""
    out = _bench("layers", "--model", "miniimagenet", "--tasks", "1", "--batch", "2", "--repeat", "1", "--warmup", "0",
                 "--threads", "2", "--conv", "winograd,im2col", "--json")
    assert out.returncode == 0, out.stderr
    figs = [json.loads(line) for line in out.stdout.splitlines()]
    assert [f["conv"] for f in figs] == ["winograd", "im2col"]
    assert all(f["gflop"] > 0 and f["threads"] == 2 for f in figs)


def test_bench_text_output_and_errors():
    out = _bench("meta", "--preset", "sine", "--algorithm", "fomaml", "--mode", "batched", "--repeat", "1")
    assert out.returncode == 0 and "meta-iterations/s" in out.stdout and "sine" in out.stdout
    for args, message in ((("meta", "--preset", "nope"), "unknown preset"),
                          (("meta", "--preset", "sine", "--algorithm", "sgd"), "unknown algorithm"),
                          (("eval", "--eval-modes", "both"), "unknown evaluation mode"),
                          (("eval", "--chunk", "0"), "--chunk must be at least 1"),
                          (("layers", "--conv", "fft"), "unknown conv 'fft'"),
                          (("layers", "--kernels", "c"), "unknown kernels 'c'")):
        bad = _bench(*args, "--repeat", "1")
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)
