import numpy as np
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
