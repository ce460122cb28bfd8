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


def test_bench_eval_times_chunks_of_tasks():
    out = _bench("eval", "--preset", "omniglot-5way-1shot", "--chunk", "2", "--repeat", "1", "--warmup", "0", "--json")
    assert out.returncode == 0, out.stderr
    (fig,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert fig["suite"] == "eval" and fig["chunk"] == 2 and fig["shots"] == 1 and fig["inner_iters"] == 50
    assert fig["modes"] == ["transductive", "per-query"]
    assert abs(fig["tasks_per_s"] - 2 / fig["median_s"]) < 1e-6 * fig["tasks_per_s"]


def test_bench_text_output_and_errors():
    out = _bench("meta", "--preset", "sine", "--algorithm", "fomaml", "--mode", "batched", "--repeat", "1")
    assert out.returncode == 0 and "meta-iterations/s" in out.stdout and "sine" in out.stdout
    for args, message in ((("meta", "--preset", "nope"), "unknown preset"),
                          (("meta", "--preset", "sine", "--algorithm", "sgd"), "unknown algorithm"),
                          (("eval", "--eval-modes", "both"), "unknown evaluation mode"),
                          (("eval", "--chunk", "0"), "--chunk must be at least 1")):
        bad = _bench(*args, "--repeat", "1")
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)
