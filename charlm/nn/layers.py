"""The non-recurrent layers: embedding, inverted dropout, softmax output with cross-entropy.

Letters: ``T`` steps, ``m`` batch, ``V`` vocabulary size, ``n_e`` embedding size, ``n_a``
hidden size. Token ids are small unsigned integers of shape (T, m).
"""

from __future__ import annotations

import numpy as np


# ---------------------------------------------------------------- embedding
def embed_forward(ids: np.ndarray, E: np.ndarray) -> np.ndarray:
    """x<t> = E^T o<t> for the one-hot vector o<t> of each id: a row lookup.

    ids (T, m), E (V, n_e) -> x (T, m, n_e).
    """
    return E[ids]


def embed_backward(ids: np.ndarray, dx: np.ndarray, V: int) -> np.ndarray:
    """dE = Σ_t o<t> dx<t>^T: the rows of dx summed per id.

    Sorting the ids once and summing runs of equal ids with ``np.add.reduceat`` does this in a
    few vectorised passes (``np.add.at`` would be the slow, element-by-element way).
    ids (T, m), dx (T, m, n_e) -> dE (V, n_e).
    """
    flat = ids.reshape(-1)
    n_e = dx.shape[-1]
    order = np.argsort(flat, kind="stable")
    sorted_ids = flat[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    dE = np.zeros((V, n_e), dtype=dx.dtype)
    if len(flat):
        dE[sorted_ids[starts]] = np.add.reduceat(dx.reshape(-1, n_e)[order], starts, axis=0)
    return dE


def one_hot(ids: np.ndarray, V: int, dtype) -> np.ndarray:
    """True one-hot inputs (``--embed 0``): ids (T, m) -> (T, m, V)."""
    out = np.zeros(ids.shape + (V,), dtype=dtype)
    np.put_along_axis(out, ids[..., None].astype(np.intp), 1.0, axis=-1)
    return out


# ------------------------------------------------------------------ dropout
def dropout_mask(shape, p: float, rng: np.random.Generator, dtype) -> np.ndarray:
    """Inverted dropout: keep each unit with probability 1 - p and scale it by 1 / (1 - p),
    so nothing needs rescaling at evaluation, where no mask is applied at all."""
    return (rng.random(shape, dtype=np.float32) >= p).astype(dtype) * dtype(1.0 / (1.0 - p))


class RowShare:
    """A Generator stand-in for a process that trains rows [lo, hi) of a batch of m rows:
    ``random((T, hi - lo, n))`` draws the whole batch's (T, m, n) numbers from ``rng``, as one
    process training all m rows would, and keeps this share's rows. Dropout masks of a batch
    split over processes (``charlm.training.distributed``) are then exactly one process's masks."""

    def __init__(self, rng: np.random.Generator, m: int, lo: int, hi: int):
        self.rng, self.m, self.lo, self.hi = rng, m, lo, hi

    def random(self, shape, dtype=np.float64):
        """shape (T, hi - lo, n) -> (T, hi - lo, n) numbers, a slice of a (T, m, n) draw."""
        T, _, n = shape
        return self.rng.random((T, self.m, n), dtype=dtype)[:, self.lo:self.hi]


# ------------------------------------------------------ softmax cross-entropy
def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log ŷ = z - logsumexp(z) along the last axis, shifted by the max so exp never overflows."""
    z = logits - logits.max(axis=-1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return z


def softmax_xent(logits: np.ndarray, y: np.ndarray, m: int):
    """L = Σ_t L<t>, L<t> = -log ŷ<t>[y<t>], summed over steps and averaged over the batch.

    logits (N, V) for all N = T·m positions at once, y (N,) targets.
    Returns (L, summed negative log-likelihood, dlogits (N, V)): dL/dz = (ŷ - onehot(y)) / m.
    """
    N = logits.shape[0]
    rows = np.arange(N)
    z = logits - logits.max(axis=1, keepdims=True)
    z_y = z[rows, y].astype(np.float64)
    np.exp(z, out=z)
    s = z.sum(axis=1, keepdims=True)
    # -log ŷ[y] = log Σ exp(z) - z[y], exact even where ŷ[y] underflows
    nll = float((np.log(s[:, 0].astype(np.float64)) - z_y).sum())
    z /= s                                              # ŷ, the softmax
    z[rows, y] -= 1.0                                   # ŷ - y
    z /= m
    return nll / m, nll, z


def target_log_probs(logits: np.ndarray, y: np.ndarray, shift: bool = True) -> np.ndarray:
    """log ŷ[y] = z[y] - logsumexp(z) for each row, without building the log-softmax array.

    logits (N, V) is scratch: it is overwritten. y (N,) targets -> (N,) float64. With
    ``shift`` (the default) each row is first shifted by its max, the same operations as
    :func:`softmax_xent`'s negative log-likelihood, so the same values. ``shift=False`` leaves
    out the max and the subtraction, two of the four passes over the (N, V) block: only for a
    caller that knows every |z| is small enough that Σ exp(z) can neither overflow nor lose
    its largest terms to underflow (see ``Model.target_log_probs``); the result then differs
    by round-off only.
    """
    rows = np.arange(logits.shape[0])
    if not shift:
        z_y = logits[rows, y].astype(np.float64)
        np.exp(logits, out=logits)
        return z_y - np.log(logits.sum(axis=1).astype(np.float64))
    z_max = logits.max(axis=1, keepdims=True)
    z_y = (logits[rows, y] - z_max[:, 0]).astype(np.float64)
    np.subtract(logits, z_max, out=logits)
    np.exp(logits, out=logits)
    s = logits.sum(axis=1)
    return z_y - np.log(s.astype(np.float64))
