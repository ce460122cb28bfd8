"""The ``--graph auto|on|off`` switch (:mod:`fometa.graph`): what it decides on NumPy, and its errors."""
import pytest

from fometa import config as C, graph


def test_numpy_steps_are_the_plain_step():
    def step(state, tasks):
        return state, {}

    for mode in ("auto", "off"):
        assert not graph.enabled(mode, "numpy")
        assert graph.runner(step, "numpy", mode) is step


def test_on_needs_cupy():
    with pytest.raises(graph.GraphError, match="^--graph on needs the cupy backend$"):
        graph.enabled("on", "numpy")
    with pytest.raises(graph.GraphError, match="^--graph on needs the cupy backend$"):
        graph.runner(lambda s, t: (s, {}), "numpy", "on")


def test_unknown_mode():
    with pytest.raises(graph.GraphError, match="must be one of auto, on, off"):
        graph.enabled("always", "numpy")


def test_config_setting_is_free_on_resume():
    assert C.RunConfig().graph == "auto" and graph.MODES == C.GRAPH_MODES
    assert C.apply_overrides(C.RunConfig(), {"graph": "off"}).graph == "off"
    with pytest.raises(C.ConfigError, match="graph must be one of auto, on, off, got 'maybe'"):
        C.apply_overrides(C.RunConfig(), {"graph": "maybe"})
    assert "graph" in C.RESUME_FREE and C.FLAGS["--graph"] == "graph"
    # configurations written before the setting existed read as auto
    d = C.to_dict(C.RunConfig())
    del d["graph"]
    assert C.from_dict(d).graph == "auto"


class _FakeCupy:
    """Stands in for a CuPy backend: only its name matters to the switch."""

    name = "cupy:0"


def test_on_a_cupy_backend_the_capture_module_decides(monkeypatch):
    import importlib.machinery
    import sys
    import types

    from fometa import backends

    monkeypatch.setattr(backends, "get_backend", lambda b=None: b)
    monkeypatch.setattr(graph, "get_backend", lambda b=None: b)
    be = _FakeCupy()

    def step(state, tasks):
        return state, {}

    if not graph._capture_available():  # as of now: no capture module
        assert not graph.enabled("auto", be) and graph.runner(step, be, "auto") is step
        with pytest.raises(graph.GraphError, match="no CUDA-graph capture yet"):
            graph.enabled("on", be)
    fake = types.ModuleType(graph.CAPTURE_MODULE)
    fake.__spec__ = importlib.machinery.ModuleSpec(graph.CAPTURE_MODULE, None)
    fake.capture = lambda fn, backend: ("captured", fn, backend)
    monkeypatch.setitem(sys.modules, graph.CAPTURE_MODULE, fake)
    assert graph.enabled("auto", be) and graph.enabled("on", be) and not graph.enabled("off", be)
    assert graph.runner(step, be, "auto") == ("captured", step, be)
    assert graph.runner(step, be, "off") is step
