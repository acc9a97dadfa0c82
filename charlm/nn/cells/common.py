"""What the three cells share: the gate non-linearity, the hoisted input product, the fused
gate layouts and the weight gradients summed over all steps (see the package docstring)."""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """σ(z) = 1 / (1 + e^-z), computed as (1 + tanh(z/2)) / 2: one ufunc pass, never overflows."""
    out = np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def uniform_init(shape, n_a: int, rng: np.random.Generator, dtype) -> np.ndarray:
    """U(-1/sqrt(n_a), 1/sqrt(n_a)), the usual initialisation of recurrent weights."""
    k = 1.0 / np.sqrt(n_a)
    return rng.uniform(-k, k, size=shape).astype(dtype)


def init_fused(n_x: int, n_a: int, G: int, rng: np.random.Generator, dtype) -> dict:
    """Weights of G fused gate blocks: W_ax (G n_a, n_x), W_aa (G n_a, n_a), b (G n_a,)."""
    return {
        "W_ax": uniform_init((G * n_a, n_x), n_a, rng, dtype),
        "W_aa": uniform_init((G * n_a, n_a), n_a, rng, dtype),
        "b": uniform_init((G * n_a,), n_a, rng, dtype),
    }


def input_product(x: np.ndarray, W_ax: np.ndarray, b: np.ndarray | None, G: int) -> np.ndarray:
    """``W_ax x<t> + b`` for every step at once, gate-major.

    x: (T, m, n_x); W_ax: (G n_a, n_x); b: (G n_a,), or None for the product alone (what
    ``bench/product_bound.py`` times)  ->  z (G, T, m, n_a).

    Gate-major means ``z[k, t]`` is gate k's (m, n_a) block at step t, one contiguous piece of
    memory. NumPy's element-wise loops run several times faster on contiguous blocks than on the
    column slices ``z[t][:, k n_a:(k+1) n_a]`` of a (T, m, G n_a) array, and the cells make about
    a dozen such calls per step.
    """
    T, m, n_x = x.shape
    n = W_ax.shape[0] // G
    z = np.matmul(x.reshape(T * m, n_x), W_ax.reshape(G, n, n_x).transpose(0, 2, 1))
    if b is not None:
        z += b.reshape(G, 1, n)
    return z.reshape(G, T, m, n)


def add_recurrent(zt: np.ndarray, r: np.ndarray) -> None:
    """``zt += r`` for one step: zt (G, m, n_a) gate-major, r = a<t-1> W_aa^T (m, G n_a)."""
    G, m, n = zt.shape
    np.add(zt, r.reshape(m, G, n).transpose(1, 0, 2), out=zt)


def gate_rows(dzt: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The gate-major (G, m, n_a) block of one step as the (m, G n_a) rows that W_aa multiplies."""
    G, m, n = dzt.shape
    np.copyto(out.reshape(m, G, n), dzt.transpose(1, 0, 2))
    return out


def transposed(W: np.ndarray) -> np.ndarray:
    """``W^T`` as a C-contiguous copy, for a product ``a @ W^T`` repeated at every step.

    OpenBLAS runs ``a @ W.T`` (a transposed view) markedly slower than the same product with
    ``W^T`` laid out contiguously: for the C1 LSTM's step, 32×256 by 256×1024 float32 on 2
    cores of an Intel Xeon (SkylakeX kernels), medians of 30: 216 µs against 140 µs, measured
    2026-11-28. The copy costs one pass over W per call of ``infer``.
    """
    return np.ascontiguousarray(W.T)


def stacked_weights(params: dict) -> np.ndarray:
    """``[W_ax | W_aa]`` (G n_a, n_x + n_a), for a step whose input and recurrent products are
    one product of ``[x<t>, a<t-1>]``. At batch 1 both are matrix-vector products; OpenBLAS
    gives a second thread to the stacked one only. For the C1 LSTM's second layer: 13 µs
    instead of 2 x 13.6 µs, measured here."""
    return np.concatenate([params["W_ax"], params["W_aa"]], axis=1)


def weight_grads(dz: np.ndarray, x: np.ndarray, W_ax: np.ndarray) -> tuple:
    """Gradients of the hoisted input product, summed over all steps: each a product over all
    T m rows at once (one per gate block for dx, one batched over the gates for dW_ax).

    dz: (G, T, m, n_a) gradient of the pre-activations; x: (T, m, n_x); W_ax: (G n_a, n_x)
    -> dx (T, m, n_x), dW_ax (G n_a, n_x), db (G n_a,).
    """
    G, T, m, n = dz.shape
    n_x = x.shape[2]
    dz2 = dz.reshape(G, T * m, n)
    W = W_ax.reshape(G, n, n_x)
    dx = dz2[0] @ W[0]
    for k in range(1, G):
        dx += dz2[k] @ W[k]
    return dx.reshape(T, m, n_x), recurrent_grad(dz, x), dz2.sum(axis=1).reshape(G * n)


def recurrent_grad(dz: np.ndarray, a_prev: np.ndarray) -> np.ndarray:
    """dW of a product ``a_prev<t> W^T`` used at every step.

    dz: (G, T, m, n) gate-major; a_prev: (T, m, k)  ->  (G n, k).
    """
    G, T, m, n = dz.shape
    k = a_prev.shape[-1]
    dW = np.matmul(dz.reshape(G, T * m, n).transpose(0, 2, 1), a_prev.reshape(T * m, k))
    return dW.reshape(G * n, k)
