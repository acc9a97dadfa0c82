"""Basic RNN cell.

Equations (course notation, one example as a column)::

    a<t> = g(W_aa a<t-1> + W_ax x<t> + b_a)        g = tanh or relu

Shapes (letters in ``cells/__init__``): x (T, m, n_x), a (T, m, n_a), W_aa (n_a, n_a),
W_ax (n_a, n_x), b (n_a,). Rows are examples, so the code writes ``a_prev @ W_aa.T``.
``W_ax x<t> + b`` is computed for all steps before the loop; see the package docstring.
"""

from __future__ import annotations

import numpy as np

from .common import (
    init_fused,
    input_product,
    recurrent_grad,
    stacked_weights,
    transposed,
    weight_grads,
)

ACTIVATIONS = ("tanh", "relu")


def init_params(n_x, n_a, rng, dtype=np.float32, activation="tanh", **_):
    return init_fused(n_x, n_a, 1, rng, dtype)


def _g(z: np.ndarray, activation: str) -> np.ndarray:
    if activation == "tanh":
        return np.tanh(z, out=z)
    return np.maximum(z, 0, out=z)


def forward(x, a0, params, activation="tanh", **_):
    """x (T, m, n_x), a0 (m, n_a) -> a (T, m, n_a), a<T> (m, n_a), cache. Nothing is allocated
    inside the time loop; the cache only refers to arrays the loop made anyway, so
    :func:`infer` is this same loop with the cache dropped."""
    W_aa_T = transposed(params["W_aa"])   # contiguous: see cells.transposed
    a = input_product(x, params["W_ax"], params["b"], 1)[0]  # becomes a<t> in place, step by step
    r = np.empty_like(a0, dtype=a.dtype)                    # a<t-1> W_aa^T
    a_prev = a0
    for t in range(a.shape[0]):
        a[t] += np.matmul(a_prev, W_aa_T, out=r)
        a_prev = _g(a[t], activation)
    return a, a_prev, (x, a0, a, activation)


def backward(da, cache, params, trace=None, **_):
    """da (T, m, n_a) = dL/da<t>  ->  dx (T, m, n_x), da0 (m, n_a), grads.
    ``trace``: a list that receives the total dL/da<t> (m, n_a) of every step, last step first
    (see ``charlm.use.gradients``); None (training) records nothing."""
    x, a0, a, activation = cache
    W_aa = params["W_aa"]
    T = a.shape[0]
    dz = np.empty_like(a)
    da_next = np.zeros_like(a0)
    for t in reversed(range(T)):
        g = da[t] + da_next
        if trace is not None:
            trace.append(g)
        # backprop through g: tanh' = 1 - a^2, relu' = [a > 0]
        if activation == "tanh":
            np.multiply(g, 1.0 - a[t] * a[t], out=dz[t])
        else:
            np.multiply(g, a[t] > 0, out=dz[t])
        da_next = dz[t] @ W_aa  # through W_aa a<t-1>
    a_prev = np.concatenate([a0[None], a[:-1]])
    dx, dW_ax, db = weight_grads(dz[None], x, params["W_ax"])
    return dx, da_next, {"W_aa": recurrent_grad(dz[None], a_prev), "W_ax": dW_ax, "b": db}


def step_weights(params, **_):
    """The weights of a stacked step: xz = [x<t>, a<t-1>] @ step_weights().T + b."""
    return stacked_weights(params)


def step(xz, a_prev, params, activation="tanh", stacked=False, **_):
    """One step from the input product xz = W_ax x<t> + b (m, n_a) -> a<t>, a<t>.
    ``stacked``: xz also holds W_aa a<t-1> (see :func:`step_weights`)."""
    z = xz if stacked else xz + a_prev @ params["W_aa"].T
    a = _g(z, activation)
    return a, a


def infer(x, a0, params, activation="tanh", **_):
    """Forward only: x (T, m, n_x), a0 (m, n_a) -> a (T, m, n_a), a<T> (m, n_a). The basic
    RNN keeps nothing beyond its outputs, so this is :func:`forward` itself, cache dropped."""
    a, a_T, _ = forward(x, a0, params, activation)
    return a, a_T
