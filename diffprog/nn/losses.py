"""Losses and metrics of diffprog.nn: softmax_cross_entropy, sigmoid_binary_cross_entropy,
mse (each a scalar mean), and accuracy (a plain float).

Owns: these functions. The cross-entropies work from logits through log_softmax and softplus,
so values and gradients stay finite and exact at logits of +-1e3 (no exp of a large
argument). Labels and shapes are checked up front: integer labels in range (NumPy labels; on
a GPU an out-of-range label gives NaN, since reading labels would synchronise), batch shapes
equal, no silent broadcasting between predictions and targets.
Layer L6: imports numpy, diffprog.backend, diffprog.numpy, diffprog.errors and diffprog.nn._util.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import diffprog.numpy as dnp

from ..backend import device_scope
from ..core.trace import Tracer
from ..errors import StructureError
from ._util import int_labels, out_of_range, probability, shape_of, xp_of


def _class_labels(logits: Any, labels: Any, where: str) -> tuple[Any, int]:
    """(labels, number of classes) after checking them against logits (..., K)."""
    ls = shape_of(logits)
    if len(ls) < 1:
        raise ValueError(f"{where}: logits must be (..., num_classes), got a scalar")
    labels = int_labels(labels, "labels", where)
    k = ls[-1]
    if tuple(labels.shape) != ls[:-1]:
        raise StructureError(
            f"{where}: logits of shape {ls} need labels of shape {ls[:-1]} (one integer class "
            f"per row), got labels of shape {tuple(labels.shape)}; the batch sizes differ"
        )
    bad = out_of_range(labels, k)
    if bad:
        raise ValueError(f"{where}: labels must lie in [0, {k}) for {k} classes, got {bad}")
    return labels, k


def softmax_cross_entropy(logits: Any, labels: Any, label_smoothing: float = 0.0) -> Any:
    """Mean over the batch of -sum_k t_k log softmax(logits)_k, with t the one-hot of the
    integer `labels` smoothed to (1 - label_smoothing) t + label_smoothing / K.

    `logits` is (..., K) and `labels` integers of shape logits.shape[:-1], in [0, K). NumPy
    labels out of range raise; CuPy labels are not read on the host (that would synchronise
    with the GPU), and an out-of-range one makes the loss NaN instead.

    >>> from diffprog import nn
    >>> float(nn.softmax_cross_entropy(np.array([[1000.0, 0.0]]), np.array([1])))
    1000.0
    """
    where = "softmax_cross_entropy"
    label_smoothing = probability(label_smoothing, "label_smoothing", where)
    labels, k = _class_labels(logits, labels, where)
    xp = xp_of(logits)
    logp = dnp.log_softmax(logits, axis=-1)
    with device_scope((logits,)):  # the one-hot targets, on the logits' GPU
        if not isinstance(labels, Tracer):  # (a batch of dp.vmap's is on the logits' device)
            labels = xp.asarray(labels)
        onehot = labels[..., None] == xp.arange(k)
        off = label_smoothing / k  # (dnp: label_smoothing may be traced)
        target = dnp.where(onehot, 1.0 - label_smoothing + off, off)
        if xp is not np:  # unchecked labels (see above): out of range gives NaN, on the device
            target = dnp.where(((labels >= 0) & (labels < k))[..., None], target, xp.nan)
        target = target.astype(logp.dtype)
    # a class the target gives no weight adds nothing, even at logit -inf (a masked class:
    # 0 * -inf would make the loss NaN); a weighted one at -inf makes it inf, as it is. Only
    # those are masked: a finite one still counts in the derivative by label_smoothing.
    masked = (target == 0) & (logp == -np.inf)
    return -dnp.mean(dnp.sum(target * dnp.where(masked, 0.0, logp), axis=-1))


def _same_shape(a: Any, b: Any, names: tuple[str, str], where: str) -> None:
    sa, sb = shape_of(a), shape_of(b)
    if sa != sb:
        raise StructureError(
            f"{where}: {names[0]} has shape {sa} but {names[1]} has shape "
            f"{sb}; they must match (reshape one; nothing is broadcast)"
        )


def sigmoid_binary_cross_entropy(logits: Any, targets: Any) -> Any:
    """Mean of -[t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))] = softplus(z) - t z over all
    elements, for logits z and targets t in [0, 1] of the same shape.

    >>> from diffprog import nn
    >>> float(nn.sigmoid_binary_cross_entropy(np.array([-1000.0, 0.0]), np.array([1.0, 1.0])))
    ... # doctest: +ELLIPSIS
    500.34657...
    """
    _same_shape(logits, targets, ("logits", "targets"), "sigmoid_binary_cross_entropy")
    return dnp.mean(dnp.softplus(logits) - targets * logits)


def mse(pred: Any, target: Any) -> Any:
    """Mean squared error: mean((pred - target)**2) over all elements; shapes must match.

    >>> from diffprog import nn
    >>> float(nn.mse(np.array([1.0, 2.0]), np.array([0.0, 0.0])))
    2.5
    """
    _same_shape(pred, target, ("pred", "target"), "mse")
    err = pred - target
    return dnp.mean(err * err)


def accuracy(logits: Any, labels: Any) -> float:
    """The fraction of rows whose argmax matches the integer label, as a Python float (a
    metric, not differentiable). Logits of the labels' own shape are one binary logit per
    example: predicted class 1 where the logit is > 0.

    >>> from diffprog import nn
    >>> nn.accuracy(np.array([[2.0, 1.0], [0.0, 3.0]]), np.array([0, 0]))
    0.5
    """
    where = "accuracy"
    ls = shape_of(logits)
    labels = int_labels(labels, "labels", where)
    if ls == tuple(labels.shape):
        pred = dnp.greater(logits, 0)
    else:
        labels, _ = _class_labels(logits, labels, where)
        pred = dnp.argmax(logits, axis=-1)
    if labels.size == 0:
        raise ValueError(f"{where}: no examples (labels is empty)")
    xp = xp_of(pred)
    with device_scope((pred,)):
        return float(xp.mean(xp.asarray(pred == xp.asarray(labels))))
