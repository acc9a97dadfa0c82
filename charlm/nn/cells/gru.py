"""Gated recurrent unit, as the course writes it (memory cell c<t> = a<t>).

Full GRU::

    Γr    = σ(W_r [c<t-1>, x<t>] + b_r)             relevance gate
    Γu    = σ(W_u [c<t-1>, x<t>] + b_u)             update gate
    c̃<t>  = tanh(W_c [Γr * c<t-1>, x<t>] + b_c)     candidate
    c<t>  = Γu * c̃<t> + (1 - Γu) * c<t-1>
    a<t>  = c<t>

Simplified GRU (``simplified=True``): no Γr, so ``c̃<t> = tanh(W_c [c<t-1>, x<t>] + b_c)``.

Γr multiplies c<t-1> *before* the product with W_c, as in the course (and Cho et al. 2014).
PyTorch's ``nn.GRU`` applies it after the product (``r * (W_hn h + b_hn)``): a different model,
so the reference tests compare against the course equations written in torch autograd.

Fused layout: gate blocks in the order [u, r, c] (simplified: [u, c]) along the first axis of
W_ax (G n_a, n_x), W_aa (G n_a, n_a) and b (G n_a,). The x parts for all steps are one product
before the loop, and the activations are kept gate-major, ``z[k, t]`` being gate k at step t
(see the package docstring). Per step the full GRU makes two products: c<t-1> with the [u, r]
rows, then (Γr * c<t-1>) with the c rows; the simplified GRU makes one.
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
    weight_grads,
)


def _blocks(simplified: bool) -> int:
    return 2 if simplified else 3


def init_params(n_x, n_a, rng, dtype=np.float32, simplified=False, **_):
    return init_fused(n_x, n_a, _blocks(simplified), rng, dtype)


def forward(x, c0, params, simplified=False, **_):
    """x (T, m, n_x), c0 (m, n_a) -> a (T, m, n_a), c<T> (m, n_a), cache."""
    c, c_T, z, rc = _run(x, c0, params, simplified, keep=True)
    return c, c_T, (x, c0, c, z, rc, simplified)


def _run(x, c0, params, simplified: bool, keep: bool):
    """The time loop of :func:`forward` and :func:`infer`: c (T, m, n_a), c<T>, and the gate
    activations z (G, T, m, n_a) and Γr * c<t-1> (T, m, n_a), which ``keep`` stores for
    backward; without it rc is one step's scratch (nothing is allocated per step either way)."""
    T, m, _ = x.shape
    n = c0.shape[1]
    G = _blocks(simplified)
    W_aa = params["W_aa"]
    z = input_product(x, params["W_ax"], params["b"], G)  # (G, T, m, n): becomes the activations
    c = np.empty((T, m, n), dtype=z.dtype)
    W_gates_T = transposed(W_aa if simplified else W_aa[: 2 * n])  # rows c<t-1> enters directly
    W_c_T = None if simplified else transposed(W_aa[2 * n:])    # the candidate's, after Γr
    r = np.empty((m, W_gates_T.shape[1]), dtype=z.dtype)    # c<t-1> times those rows
    rc = None if simplified else np.empty((T, m, n) if keep else (m, n), dtype=z.dtype)
    rcw = None if simplified else np.empty((m, n), dtype=z.dtype)  # (Γr * c<t-1>) W_c^T
    c_prev = c0
    for t in range(T):
        zt = z[:, t]
        if simplified:
            add_recurrent(zt, np.matmul(c_prev, W_gates_T, out=r))
            sigmoid(zt[0], out=zt[0])                      # Γu
            np.tanh(zt[1], out=zt[1])                      # c̃
        else:
            rc_t = rc[t] if keep else rc
            add_recurrent(zt[:2], np.matmul(c_prev, W_gates_T, out=r))
            sigmoid(zt[:2], out=zt[:2])                    # Γu, Γr
            np.multiply(zt[1], c_prev, out=rc_t)           # Γr * c<t-1>
            zt[2] += np.matmul(rc_t, W_c_T, out=rcw)
            np.tanh(zt[2], out=zt[2])                      # c̃
        gamma_u, c_tilde = zt[0], zt[-1]
        # c<t> = c<t-1> + Γu * (c̃ - c<t-1>), the same as Γu c̃ + (1 - Γu) c<t-1>
        np.subtract(c_tilde, c_prev, out=c[t])
        c[t] *= gamma_u
        c[t] += c_prev
        c_prev = c[t]
    return c, c_prev, z, rc


def backward(da, cache, params, trace=None, **_):
    """da (T, m, n_a) = dL/da<t>  ->  dx (T, m, n_x), dc0 (m, n_a), grads.
    ``trace``: a list that receives the total dL/dc<t> (m, n_a) of every step (c<t> = a<t>),
    last step first (see ``charlm.use.gradients``); None (training) records nothing."""
    x, c0, c, z, rc, simplified = cache
    T, m, n = c.shape
    W_aa = params["W_aa"]
    dz = np.empty_like(z)
    rows = np.empty((m, 2 * n), dtype=z.dtype)
    dc_next = np.zeros_like(c0)
    for t in reversed(range(T)):
        c_prev = c0 if t == 0 else c[t - 1]
        gamma_u, c_tilde = z[0, t], z[-1, t]
        dzu, dzc = dz[0, t], dz[-1, t]
        dc = da[t] + dc_next
        if trace is not None:
            trace.append(dc)
        # c<t> = Γu c̃ + (1 - Γu) c<t-1>
        np.multiply(dc, c_tilde - c_prev, out=dzu)       # dΓu
        dzu *= gamma_u * (1.0 - gamma_u)                 # through σ
        np.multiply(dc, gamma_u, out=dzc)                # dc̃
        dzc *= 1.0 - c_tilde * c_tilde                   # through tanh
        dc_prev = dc * (1.0 - gamma_u)
        if simplified:
            dc_prev += gate_rows(dz[:, t], rows) @ W_aa  # c<t-1> in both [u, c] products
        else:
            gamma_r = z[1, t]
            drc = dzc @ W_aa[2 * n:]                     # d(Γr * c<t-1>)
            dzr = dz[1, t]
            np.multiply(drc, c_prev, out=dzr)            # dΓr
            dzr *= gamma_r * (1.0 - gamma_r)             # through σ
            dc_prev += drc * gamma_r
            dc_prev += gate_rows(dz[:2, t], rows) @ W_aa[: 2 * n]  # c<t-1> in the [u, r] product
        dc_next = dc_prev
    c_prevs = np.concatenate([c0[None], c[:-1]])
    dx, dW_ax, db = weight_grads(dz, x, params["W_ax"])
    if simplified:
        dW_aa = recurrent_grad(dz, c_prevs)
    else:
        dW_aa = np.concatenate([recurrent_grad(dz[:2], c_prevs), recurrent_grad(dz[2:], rc)])
    return dx, dc_next, {"W_aa": dW_aa, "W_ax": dW_ax, "b": db}


def step_weights(params, simplified=False, **_):
    """The weights of a stacked step, xz = [x<t>, c<t-1>] @ step_weights().T + b, or None.
    The full GRU is not stacked: c<t-1> enters its [u, r] rows only (the candidate's product
    comes after Γr), and its two separate products measured faster than one stacked product
    (15 µs against 18 µs a token for C1's second layer)."""
    return stacked_weights(params) if simplified else None


def step(xz, c_prev, params, simplified=False, stacked=False, **_):
    """One step from xz = W_ax x<t> + b (m, G n_a) -> a<t>, c<t> (both (m, n_a)).
    ``stacked`` (simplified GRU only): xz also holds W_aa c<t-1> (see :func:`step_weights`)."""
    n = c_prev.shape[1]
    W_aa = params["W_aa"]
    if simplified:
        zt = xz if stacked else xz + c_prev @ W_aa.T
        gamma_u = sigmoid(zt[:, :n])
        c_tilde = np.tanh(zt[:, n:])
    else:
        g = sigmoid(xz[:, : 2 * n] + c_prev @ W_aa[: 2 * n].T)
        gamma_u = g[:, :n]
        c_tilde = np.tanh(xz[:, 2 * n:] + (g[:, n:] * c_prev) @ W_aa[2 * n:].T)
    c = c_prev + gamma_u * (c_tilde - c_prev)
    return c, c


def infer(x, c0, params, simplified=False, **_):
    """Forward only (no cache, nothing allocated per step): x (T, m, n_x), c0 (m, n_a)
    -> a (T, m, n_a), c<T> (m, n_a). The same loop as :func:`forward` (:func:`_run`), keeping
    nothing for backward."""
    c, c_T, _, _ = _run(x, c0, params, simplified, keep=False)
    return c, c_T
