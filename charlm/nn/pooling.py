"""Pooling: one vector per sequence from the hidden states of its real (unpadded) steps.

Letters: ``T`` steps of the longest sequence in the batch, ``m`` batch, ``D`` size of a step's
output (``n_a``, or ``2 n_a`` for a bidirectional layer: ``[a→<t>, a←<t>]``), ``T_x`` the
length of one sequence. ``lengths`` (m,) holds each T_x (at least 1); steps t ≥ T_x are padding
and take no part in the result, whatever they hold.

- ``last``: the course's ``a<T_x>``. For a BRNN it is ``[a→<T_x>, a←<1>]``: the forward
  direction has read the whole sequence at its last step, the backward one at its first.
- ``mean``: ``(1/T_x) Σ_{t ≤ T_x} a<t>``.
- ``max``: the largest value of each unit over the real steps (the gradient goes to the step
  that gave it; ties to the first).

``pool_forward`` and ``pool_backward`` are pure functions; the cache goes back to the caller.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

POOLS = ("last", "mean", "max")


def step_mask(lengths: np.ndarray, T: int) -> np.ndarray:
    """(T, m) boolean: True at the real steps t < T_x of each sequence."""
    return np.arange(T)[:, None] < np.asarray(lengths)[None, :]


def pool_forward(h: np.ndarray, lengths: np.ndarray, mode: str = "last",
                 bidirectional: bool = False):
    """h (T, m, D), lengths (m,) -> pooled (m, D), cache for :func:`pool_backward`."""
    if mode not in POOLS:
        raise ConfigError(f"Unknown pooling {mode!r}. Use one of: {', '.join(POOLS)}.")
    T, m, D = h.shape
    lengths = np.asarray(lengths, dtype=np.intp)
    if m and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"lengths must lie in [1, {T}]")
    cols = np.arange(m)
    if mode == "last":
        p = h[lengths - 1, cols].copy()
        if bidirectional:                       # the backward half at the first step
            n = D // 2
            p[:, n:] = h[0, :, n:]
        return p, (mode, h.shape, lengths, bidirectional, None)
    mask = step_mask(lengths, T)
    if mode == "mean":
        p = np.einsum("tm,tmd->md", mask.astype(h.dtype), h) / lengths[:, None].astype(h.dtype)
        return p, (mode, h.shape, lengths, bidirectional, mask)
    masked = np.where(mask[:, :, None], h, -np.inf)
    arg = masked.argmax(axis=0)                 # (m, D): the step of each unit's maximum
    p = np.take_along_axis(h, arg[None], axis=0)[0]
    return p, (mode, h.shape, lengths, bidirectional, arg)


def pool_backward(dp: np.ndarray, cache) -> np.ndarray:
    """dp (m, D) -> dh (T, m, D): zero at every padded step."""
    mode, shape, lengths, bidirectional, extra = cache
    T, m, D = shape
    dh = np.zeros(shape, dtype=dp.dtype)
    cols = np.arange(m)
    if mode == "last":
        if bidirectional:
            n = D // 2
            dh[lengths - 1, cols, :n] = dp[:, :n]
            dh[0, :, n:] += dp[:, n:]
        else:
            dh[lengths - 1, cols] = dp
    elif mode == "mean":
        dh[:] = dp / lengths[:, None].astype(dp.dtype)
        dh *= extra[:, :, None]
    else:
        np.put_along_axis(dh, extra[None], dp[None], axis=0)
    return dh
