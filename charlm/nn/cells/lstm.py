"""Long short-term memory cell, as the course writes it.

Equations::

    c̃<t> = tanh(W_c [a<t-1>, x<t>] + b_c)
    Γu   = σ(W_u [a<t-1>, x<t>] + b_u)          update gate
    Γf   = σ(W_f [a<t-1>, x<t>] + b_f)          forget gate
    Γo   = σ(W_o [a<t-1>, x<t>] + b_o)          output gate
    c<t> = Γu * c̃<t> + Γf * c<t-1>
    a<t> = Γo * tanh(c<t>)

Peephole connections (``peephole=True``) let the three gates see the previous memory cell too:
each gate's pre-activation gains ``p_g * c<t-1>`` (one weight per unit, ``p`` of shape
(3 n_a,) in the order [u, f, o]), as the course describes them: "the gate values may depend not
only on a<t-1> and x<t> but also on c<t-1>".

Fused layout: the four blocks [u, f, o, c] stacked along the first axis of W_ax (4 n_a, n_x),
W_aa (4 n_a, n_a) and b (4 n_a,): one product per step. The x parts for all steps are one
product before the loop, and the activations are kept gate-major, ``z[k, t]`` being gate k at
step t (see the package docstring).
"""

from __future__ import annotations

import numpy as np

from .common import (
    add_recurrent,
    gate_rows,
    init_fused,
    input_product,
    recurrent_grad,
    sigmoid,
    stacked_weights,
    transposed,
    uniform_init,
    weight_grads,
)

# PyTorch's nn.LSTM stacks its gate blocks [i, f, g, o]; charlm's are [u, f, o, c] (Γu, Γf, Γo,
# c̃). Torch's block k is charlm's block TORCH_ORDER[k]; the permutation is its own inverse, so
# torch_layout turns either layout into the other. The tests and the benchmarks that compare
# with PyTorch use this one map.
TORCH_ORDER = (0, 1, 3, 2)


def torch_layout(w: np.ndarray, n_a: int) -> np.ndarray:
    """Rows of a fused LSTM weight or bias (4 n_a, ...) in the other library's gate order."""
    return np.concatenate([w[k * n_a:(k + 1) * n_a] for k in TORCH_ORDER])


def init_params(n_x, n_a, rng, dtype=np.float32, peephole=False, **_):
    params = init_fused(n_x, n_a, 4, rng, dtype)
    if peephole:
        params["p"] = uniform_init((3 * n_a,), n_a, rng, dtype)
    return params


def _activate(zt: np.ndarray, c_prev: np.ndarray, p: np.ndarray | None) -> None:
    """Turn one step's gate-major pre-activations zt (4, m, n) into [Γu, Γf, Γo, c̃], in place."""
    if p is not None:
        zt[:3] += p.reshape(3, 1, -1) * c_prev
    sigmoid(zt[:3], out=zt[:3])
    np.tanh(zt[3], out=zt[3])


def forward(x, state, params, peephole=False, **_):
    """x (T, m, n_x), state = (a0, c0) each (m, n_a)  ->  a (T, m, n_a), (a<T>, c<T>), cache."""
    a0, c0 = state
    T, m, _ = x.shape
    n = a0.shape[1]
    W_aa_T = transposed(params["W_aa"])   # contiguous: see cells.transposed
    p = params.get("p") if peephole else None
    z = input_product(x, params["W_ax"], params["b"], 4)  # (4, T, m, n): becomes the activations
    a = np.empty((T, m, n), dtype=z.dtype)
    c = np.empty((T, m, n), dtype=z.dtype)
    tanh_c = np.empty((T, m, n), dtype=z.dtype)
    r = np.empty((m, 4 * n), dtype=z.dtype)
    a_prev, c_prev = a0, c0
    for t in range(T):
        zt = z[:, t]
        add_recurrent(zt, np.matmul(a_prev, W_aa_T, out=r))
        _activate(zt, c_prev, p)
        gamma_u, gamma_f, gamma_o, c_tilde = zt
        np.multiply(gamma_u, c_tilde, out=c[t])
        c[t] += gamma_f * c_prev                       # c<t> = Γu c̃ + Γf c<t-1>
        np.tanh(c[t], out=tanh_c[t])
        np.multiply(gamma_o, tanh_c[t], out=a[t])      # a<t> = Γo tanh(c<t>)
        a_prev, c_prev = a[t], c[t]
    return a, (a_prev, c_prev), (x, a0, c0, a, c, tanh_c, z, p is not None)


def backward(da, cache, params, trace=None, **_):
    """da (T, m, n_a)  ->  dx (T, m, n_x), (da0, dc0) each (m, n_a), grads.
    ``trace``: a list that receives the pair (dL/da<t>, dL/dc<t>), each (m, n_a) and total
    (every path after step t), of every step, last step first (see ``charlm.use.gradients``);
    None (training) records nothing."""
    x, a0, c0, a, c, tanh_c, z, peephole = cache
    T, m, n = a.shape
    W_aa = params["W_aa"]
    p = params["p"].reshape(3, 1, n) if peephole else None
    dz = np.empty_like(z)
    rows = np.empty((m, 4 * n), dtype=z.dtype)
    da_next = np.zeros_like(a0)
    dc_next = np.zeros_like(c0)
    for t in reversed(range(T)):
        c_prev = c0 if t == 0 else c[t - 1]
        gamma_u, gamma_f, gamma_o, c_tilde = z[:, t]
        dzu, dzf, dzo, dzc = dz[:, t]
        dat = da[t] + da_next
        # a<t> = Γo tanh(c<t>)
        np.multiply(dat, tanh_c[t], out=dzo)
        dzo *= gamma_o * (1.0 - gamma_o)
        dc = dc_next + dat * gamma_o * (1.0 - tanh_c[t] * tanh_c[t])
        if trace is not None:
            trace.append((dat, dc))
        # c<t> = Γu c̃ + Γf c<t-1>
        np.multiply(dc, c_tilde, out=dzu)
        dzu *= gamma_u * (1.0 - gamma_u)
        np.multiply(dc, c_prev, out=dzf)
        dzf *= gamma_f * (1.0 - gamma_f)
        np.multiply(dc, gamma_u, out=dzc)
        dzc *= 1.0 - c_tilde * c_tilde
        dc_next = dc * gamma_f
        if p is not None:  # the peepholes p_g * c<t-1>
            dc_next += (dz[:3, t] * p).sum(axis=0)
        da_next = gate_rows(dz[:, t], rows) @ W_aa
    a_prevs = np.concatenate([a0[None], a[:-1]])
    dx, dW_ax, db = weight_grads(dz, x, params["W_ax"])
    grads = {"W_aa": recurrent_grad(dz, a_prevs), "W_ax": dW_ax, "b": db}
    if p is not None:
        c_prevs = np.concatenate([c0[None], c[:-1]])
        grads["p"] = (dz[:3] * c_prevs).sum(axis=(1, 2)).reshape(3 * n)
    return dx, (da_next, dc_next), grads


def step_weights(params, **_):
    """The weights of a stacked step: xz = [x<t>, a<t-1>] @ step_weights().T + b."""
    return stacked_weights(params)


def step(xz, state, params, peephole=False, stacked=False, **_):
    """One step from xz = W_ax x<t> + b (m, 4 n_a) -> a<t>, (a<t>, c<t>).
    ``stacked``: xz also holds W_aa a<t-1> (see :func:`step_weights`)."""
    a_prev, c_prev = state
    m, n = a_prev.shape
    if not stacked:
        xz = xz + a_prev @ params["W_aa"].T
    zt = xz.reshape(m, 4, n).transpose(1, 0, 2)
    _activate(zt, c_prev, params.get("p") if peephole else None)
    gamma_u, gamma_f, gamma_o, c_tilde = zt
    c = gamma_u * c_tilde + gamma_f * c_prev
    a = gamma_o * np.tanh(c)
    return a, (a, c)


def infer(x, state, params, peephole=False, **_):
    """Forward only (no cache, nothing allocated per step): x (T, m, n_x), state = (a0, c0)
    each (m, n_a)  ->  a (T, m, n_a), (a<T>, c<T>). The same equations as :func:`forward`, in a
    loop of its own because it is measurably faster than :func:`forward` with the cache
    dropped: the whole evaluation pass (``charlm bench --config C1 --cell lstm --mode eval``, one
    thread, 7 interleaved pairs) ran 5 % slower through forward (all 7 pairs, 0.92-0.98 x).

    σ(z) is (1 + tanh(z/2)) / 2, and :func:`forward` computes it so. Here the rows of the three
    gates in W_ax, W_aa, b (and p) are halved once, before the loop, which is exact in floating
    point: the loop then holds z/2 for the gates and z for c̃, and one tanh call over all four
    blocks does the work of four calls.
    """
    a0, c0 = state
    T, m, _ = x.shape
    n = a0.shape[1]
    half = np.ones((4 * n, 1), dtype=params["W_aa"].dtype)
    half[: 3 * n] = 0.5                                    # rows of [u, f, o]; c̃'s stay
    W_aa_T = transposed(params["W_aa"] * half)             # (n, 4 n), contiguous
    z = input_product(x, params["W_ax"] * half, params["b"] * half[:, 0], 4)  # (4, T, m, n)
    p = 0.5 * params["p"].reshape(3, 1, n) if peephole and "p" in params else None
    a = np.empty((T, m, n), dtype=z.dtype)
    c = np.array(c0, dtype=z.dtype)                        # c<t>, updated in place
    r = np.empty((m, 4 * n), dtype=z.dtype)                # a<t-1> W_aa^T
    pc = None if p is None else np.empty((3, m, n), dtype=z.dtype)
    a_prev = a0
    for t in range(T):
        zt = z[:, t]
        add_recurrent(zt, np.matmul(a_prev, W_aa_T, out=r))
        if p is not None:                                  # the peepholes p_g * c<t-1>
            zt[:3] += np.multiply(p, c, out=pc)
        np.tanh(zt, out=zt)                                # tanh(z/2) of the gates; c̃
        gates = zt[:3]
        gates += 1.0
        gates *= 0.5                                       # Γu, Γf, Γo
        gamma_u, gamma_f, gamma_o, c_tilde = zt
        c *= gamma_f
        c += np.multiply(gamma_u, c_tilde, out=gamma_u)    # c<t> = Γu c̃ + Γf c<t-1>
        np.tanh(c, out=a[t])
        a[t] *= gamma_o                                    # a<t> = Γo tanh(c<t>)
        a_prev = a[t]
    return a, (a_prev, c)
