"""dp.debug_nans: the first NaN/Inf an operation produces raises, naming the primitive, the
shapes and the user's line, in forward and backward passes; off, nothing is installed."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.ad import forward, reverse
from diffprog.core.primitive import Primitive

ORIGINAL_RUN = Primitive.run


def forward_nan(x):
    return dnp.sum(dnp.log(x))  # the line the forward error names


def backward_inf(x):
    y = dnp.sqrt(x)  # the line the backward error names
    return dnp.sum(y * 2.0)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def test_forward_nan_names_primitive_shapes_and_line():
    with dp.debug_nans(), pytest.raises(dp.NonFiniteError) as info:
        dp.grad(forward_nan)(np.array([1.0, -1.0]))
    message = str(info.value)
    assert message.startswith("log produced nan in the forward pass")
    assert "shape (2,) float64" in message
    assert "test_debug.py" in message and "dnp.sum(dnp.log(x))" in message


def test_backward_inf_names_the_forward_line_of_the_rule():
    with dp.debug_nans(), pytest.raises(dp.NonFiniteError) as info:
        dp.grad(backward_inf)(np.array([1.0, 0.0]))
    message = str(info.value)
    assert "derivative rule of sqrt produced inf in the backward pass" in message
    assert "y = dnp.sqrt(x)" in message


def test_second_order_backward_is_checked_too():
    with dp.debug_nans(), pytest.raises(dp.NonFiniteError, match="backward pass of sqrt"):
        dp.grad(dp.grad(lambda x: dnp.sum(dnp.sqrt(x))))(0.0)


def test_forward_mode_tangent_inf_names_the_rule_and_line():
    """A JVP rule's tangent is checked too (forward mode's rules compute on raw arrays,
    which no kernel check sees): sqrt's slope at 0 is infinite."""
    with dp.debug_nans(), pytest.raises(dp.NonFiniteError) as info:
        dp.jvp(backward_inf, (np.array([1.0, 0.0]),), (np.ones(2),))
    message = str(info.value)
    assert message.startswith("the JVP rule of sqrt produced inf in a forward-mode tangent")
    assert "y = dnp.sqrt(x)" in message and "shape (2,) float64" in message
    with dp.debug_nans(), pytest.raises(dp.NonFiniteError, match="produced (nan|inf)"):
        dp.jacfwd(lambda x: dnp.sqrt(x) * 2.0)(np.zeros(3))
    with dp.debug_nans(), pytest.raises(dp.NonFiniteError, match="JVP rule of sqrt produced inf"):
        dp.jvp(dp.grad(lambda x: dnp.sum(x * dnp.sqrt(x))), (np.zeros(2),), (np.ones(2),))


def test_forward_mode_nan_tangent_given_is_not_blamed_on_an_operation():
    with dp.debug_nans():
        _, t = dp.jvp(lambda x: dnp.sqrt(x), (np.array([1.0, 4.0]),), (np.array([np.nan, 1.0]),))
        _, finite = dp.jvp(lambda x: dnp.sqrt(x), (np.array([1.0, 4.0]),), (np.ones(2),))
    np.testing.assert_array_equal(t, [np.nan, 0.25])
    np.testing.assert_array_equal(finite, [0.5, 0.25])


def test_nan_already_in_the_data_is_not_blamed_on_an_operation():
    with dp.debug_nans():
        g = dp.grad(lambda x: dnp.sum(x * 2.0))(np.array([np.nan, 1.0]))
    np.testing.assert_array_equal(g, [2.0, 2.0])


def test_off_means_nothing_installed_and_no_error():
    with dp.debug_nans():
        assert Primitive.run is not ORIGINAL_RUN and reverse.check_cotangent is not None
        assert forward.check_tangent is not None
    assert Primitive.run is ORIGINAL_RUN and reverse.check_cotangent is None
    assert forward.check_tangent is None
    assert reverse.ReverseTrace.process is reverse._plain_process
    g = dp.grad(backward_inf)(np.array([1.0, 0.0]))  # off: the inf just flows through
    assert np.isinf(g[1])


def test_the_switch_is_per_thread():
    """Another thread computing an inf is not interrupted by this thread's switch."""
    results = []
    inside = threading.Event()
    release = threading.Event()

    def other():
        inside.wait()
        results.append(dp.grad(backward_inf)(np.array([0.0])))
        release.set()

    t = threading.Thread(target=other)
    t.start()
    with dp.debug_nans():
        inside.set()
        release.wait(10)
    t.join()
    assert np.isinf(results[0][0])
