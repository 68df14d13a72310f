import numpy as np
import pytest
import diffprog as dp
import diffprog.numpy as dnp
from diffprog.testing import check_grads


def test_3_trace_method_is_numpys_trace():
    m = np.arange(12.0).reshape(3, 4)
    g = dp.grad(lambda x: x.trace())(m)
    np.testing.assert_array_equal(g, np.eye(3, 4))
    g = dp.grad(lambda x: x.trace(1))(m)
    np.testing.assert_array_equal(g, np.eye(3, 4, k=1))
    t = np.arange(24.0).reshape(2, 3, 4)
    value, _ = dp.value_and_grad(lambda x: dnp.sum(x.trace(0, 1, 2) ** 2))(t)
    assert value == np.sum(t.trace(0, 1, 2) ** 2)
    assert dp.jvp(lambda x: x.trace(), (m,), (np.ones_like(m),))[1] == 3.0
    for dtype in (np.float64, np.float32):
        check_grads(lambda x: x.trace(-1, axis1=2, axis2=0), (t.astype(dtype) / 10,), order=2)


# --- 4 and 5. kernel errors: any exception class, the name once -----------------------------
@pytest.mark.parametrize("traced", [False, True])
def test_4_kernel_error_of_an_unbuildable_numpy_exception_class(traced):
    def f(x):
        return dnp.multiply(x, "abc")

    with pytest.raises(TypeError, match="^multiply: ufunc 'multiply' did not contain") as info:
        dp.grad(lambda x: dnp.sum(f(x)))(np.ones(2)) if traced else f(np.ones(2))
    assert type(info.value) is TypeError  # the nearest builtin: NumPy's class needs a ufunc
    cause = info.value.__cause__  # the chain is kept
    assert type(cause).__module__.startswith("numpy") and "did not contain a loop" in str(cause)
    assert "operands: shape (2,) float64, str" in str(info.value)


@pytest.mark.parametrize("traced", [False, True])
def test_5_an_op_named_by_numpy_is_named_once(traced):
    def f(a):
        return dnp.matmul(a, np.ones((2, 3)))

    with pytest.raises(ValueError) as info:
        dp.grad(lambda a: dnp.sum(f(a)))(np.ones((2, 3))) if traced else f(np.ones((2, 3)))
    message = str(info.value)
    assert message.startswith("matmul: ") and message.count("matmul:") == 1
    assert "operands: shape (2, 3) float64, shape (2, 3) float64" in message
    with pytest.raises(ValueError, match=r"^sum_to_shape: cannot sum") as info:
        dp.core.edge.sum_to_shape(np.ones(2), shape=(3, 2, 1))
