"""The gradient checker itself: it passes correct gradients, names wrong ones, judges exactly
zero gradients against ``floor``, refuses kinked points, and checks shapes."""
import numpy as np
import pytest

from fometa.gradcheck import KinkError, assert_gradients, relative_errors


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    x = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}

    def f(t):
        return float(np.sin(t["a"]).sum() * np.cosh(t["b"]).sum() + (t["b"] ** 3).sum())

    def grad(t):
        return {
            "a": np.cos(t["a"]) * np.cosh(t["b"]).sum(),
            "b": np.sin(t["a"]).sum() * np.sinh(t["b"]) + 3 * t["b"] ** 2,
        }

    return f, x, grad(x), rng


def test_correct_gradients_pass():
    f, x, g, rng = _problem()
    errors = assert_gradients(f, x, g, rng)
    assert set(errors) == {"a", "b"} and max(errors.values()) < 1e-8, errors


@pytest.mark.parametrize("factor", [1.001, 0.999, -1.0])
def test_a_wrong_gradient_is_named(factor):
    f, x, g, rng = _problem(1)
    wrong = dict(g, b=g["b"] * factor)
    with pytest.raises(AssertionError, match=r"relative error > 1e-06\): b: ") as info:
        assert_gradients(f, x, wrong, rng)
    assert "a:" not in str(info.value), f"only b is wrong: {info.value}"


def test_one_wrong_entry_is_caught():
    f, x, g, rng = _problem(2)
    wrong = {"a": g["a"].copy(), "b": g["b"]}
    wrong["a"][1, 2] += 1e-3 * np.abs(g["a"]).max()
    errors = relative_errors(f, x, wrong, rng)
    assert errors["a"] > 1e-6 and errors["b"] < 1e-8, errors


def test_exactly_zero_gradient_is_judged_against_floor():
    """A parameter that enters only through round-off (as a conv bias before batch norm) has a
    difference quotient of pure noise: relative to itself that is a 100% error; ``floor``
    judges it against the largest gradient instead."""
    rng = np.random.default_rng(0)
    x = {"used": rng.standard_normal(4), "unused": rng.standard_normal(16)}

    def f(t):
        noise = (((t["unused"] + 2.0) - 2.0) - t["unused"]).sum()  # zero but for round-off
        return float((t["used"] ** 2).sum() + noise)

    g = {"used": 2 * x["used"], "unused": np.zeros(16)}
    errors = assert_gradients(f, x, g, rng)
    assert errors["unused"] < 1e-6, errors
    assert relative_errors(f, x, g, np.random.default_rng(3), floor=1e-12)["unused"] > 0.5, (
        "without a floor, round-off alone should fail an exactly-zero gradient"
    )
    with pytest.raises(AssertionError, match="unused"):
        assert_gradients(f, x, dict(g, unused=np.full(16, 0.1)), rng)


def test_kinks_everywhere_raise_kink_error():
    """|x| with every component within the difference step of its kink: no smooth direction."""
    rng = np.random.default_rng(4)
    x = {"v": 3e-7 * rng.standard_normal(200)}
    with pytest.raises(KinkError, match="no smooth direction"):
        relative_errors(lambda t: float(np.abs(t["v"]).sum()), x, {"v": np.sign(x["v"])}, rng)


def test_gradient_shape_must_match():
    f, x, g, rng = _problem()
    with pytest.raises(ValueError, match="shape"):
        relative_errors(f, x, dict(g, b=g["b"][:-1]), rng)
