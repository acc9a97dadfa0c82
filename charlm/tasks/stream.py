"""Token-id stream -> (T, m) training windows for truncated backpropagation through time.

Letters: ``N`` tokens in the stream, ``m`` rows (the batch), ``n = N // m`` targets per row,
``T`` steps per window.

The stream is split into ``m`` contiguous rows, each read left to right, so the hidden state at
the end of one window is the right state to start the next window of the same row with. A
stream position's input is the token before it; the first token of a row is predicted from the
token that ends the row before it (from ``<EOS>`` for row 0), so every token of the stream is a
target exactly once per epoch. The last ``N mod m`` tokens (fewer than ``m``) are left out.

Windows are time-major views into one ``(n + 1, m)`` grid of small unsigned integers: memory is
a few bytes per token, never a one-hot matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..text.vocab import EOS_ID


@dataclass
class Batches:
    """The grid of one stream: ``grid[j, r]`` is the input at step ``j`` of row ``r``."""

    grid: np.ndarray  # (n + 1, m) unsigned ints
    bptt: int

    @classmethod
    def from_stream(cls, ids: np.ndarray, m: int, bptt: int) -> "Batches":
        """Lay ``ids`` (N,) out as ``m`` rows; ``bptt`` is the window length T."""
        n = len(ids) // m
        s = np.empty(m * n + 1, dtype=ids.dtype)
        s[0] = EOS_ID
        s[1:] = ids[: m * n]
        # Row r covers stream positions [r*n, (r+1)*n]: it shares its first input with the
        # previous row's last target. Built with a strided view, then copied time-major.
        rows = np.lib.stride_tricks.as_strided(
            s, shape=(m, n + 1), strides=(n * s.itemsize, s.itemsize), writeable=False)
        return cls(np.ascontiguousarray(rows.T), bptt)

    @property
    def m(self) -> int:
        return self.grid.shape[1]

    @property
    def steps_per_row(self) -> int:
        """Targets per row, n."""
        return self.grid.shape[0] - 1

    @property
    def tokens(self) -> int:
        """Targets per epoch, m * n."""
        return self.steps_per_row * self.m

    def __len__(self) -> int:
        """Windows per epoch (the last one may be shorter than T)."""
        return -(-self.steps_per_row // self.bptt)

    def rows(self, lo: int, hi: int) -> "Batches":
        """Rows [lo, hi) of every window (one process's share of the batch): the same
        windows, the same number of them, each (T, hi - lo)."""
        return Batches(np.ascontiguousarray(self.grid[:, lo:hi]), self.bptt)

    def window(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs X and targets Y of window ``k``, both (T, m); Y[t] is X[t + 1]."""
        a = k * self.bptt
        b = min(a + self.bptt, self.steps_per_row)
        return self.grid[a:b], self.grid[a + 1: b + 1]
