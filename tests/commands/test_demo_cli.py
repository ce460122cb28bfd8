"""``fometa demo``: the command serves the page of a run's model on this machine only and prints its
address; bad options and unknown models are one-line errors. (The page and its API: tests/demo.)"""
import base64
import io
import json
import signal
import urllib.request

import numpy as np
import pytest
from cli_helpers import FAST, fometa_cli, fometa_process

pytest.importorskip("PIL")


@pytest.fixture(scope="module")
def trained_run(tiny_omniglot, tmp_path_factory):
    from fometa.cli import main

    run = tmp_path_factory.mktemp("runs") / "run"
    rc = main(["train", "--preset", "omniglot-5way-1shot", "--data", str(tiny_omniglot), "--out", str(run), *FAST,
               "--meta-iters", "4", "--eval-interval", "0", "--quiet"])
    assert rc == 0
    return run


def _drawing(corner: int) -> str:
    """A 105x105 PNG data URL: a black square in one of four places on white."""
    from PIL import Image

    pixels = np.full((105, 105), 255, dtype=np.uint8)
    r, c = divmod(corner, 2)
    pixels[10 + 50 * r: 45 + 50 * r, 10 + 50 * c: 45 + 50 * c] = 0
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _post(url, payload):
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read())


def test_demo_serves_the_page_of_a_run_on_this_machine(trained_run):
    proc = fometa_process("demo", "--model", trained_run, "--port", "0")
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"fometa demo: {trained_run} at http://127.0.0.1:"), (line, proc.stderr.read())
        base = line.split(" at ")[1].split()[0].rstrip("/")
        with urllib.request.urlopen(base + "/", timeout=30) as r:
            assert r.status == 200 and b"demo.js" in r.read()
        with urllib.request.urlopen(base + "/api/info", timeout=30) as r:
            info = json.loads(r.read())
        assert info["model"] == str(trained_run) and info["classes"] == 5, info
        answer = _post(base + "/api/adapt", {"classes": [{"name": f"c{i}", "images": [_drawing(i)]} for i in range(4)],
                                             "query": _drawing(2)})
        assert answer["classes"] == ["c0", "c1", "c2", "c3"] and len(answer["probabilities"]) == 4, answer
        assert abs(sum(answer["probabilities"]) - 1) < 1e-6, answer["probabilities"]
        assert [s["step"] for s in answer["steps"]] == [0, 1, 5, 50] and answer["seconds"] > 0, answer["steps"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)  # reads the pipes while waiting: a full pipe cannot block the exit
        assert proc.returncode == 130, err
        assert "interrupted" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_demo_listens_on_this_machine_only_unless_told():
    from fometa.cli import build_parser

    args = build_parser().parse_args(["demo"])
    assert (args.host, args.port, args.model) == ("127.0.0.1", 8000, "omniglot-5way")


@pytest.mark.parametrize("args, message", [
    (["--model", "no-such-model"], "no-such-model: no such run folder or checkpoint file, nor a shipped model"),
    (["--model", "missing/run"], "missing/run"),
    (["--port", "70000"], "--port must be in 0..65535, got 70000"),
])
def test_demo_errors(capsys, args, message):
    rc, out, err = fometa_cli(capsys, "demo", *args)
    assert rc == 2 and err.startswith("fometa: error: ") and message in err and out == "", err
    assert len(err.strip().splitlines()) == 1, err


def test_demo_on_a_port_in_use_is_an_error(capsys, trained_run):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc, _, err = fometa_cli(capsys, "demo", "--model", trained_run, "--port", port)
    assert rc == 2 and f"cannot listen on 127.0.0.1:{port}" in err, err


def test_demo_says_when_a_runs_previous_checkpoint_is_used(capsys, tiny_run_on_previous):
    from fometa.commands.demo import load

    run, previous = tiny_run_on_previous
    clf, name = load(str(run))
    err = capsys.readouterr().err
    assert name == str(run) and clf.ways == 3
    assert err.startswith("fometa demo: ") and f"previous checkpoint, checkpoint.prev.h5 at meta-iteration {previous}" \
        in err, err
