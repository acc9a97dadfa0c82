"""Data-parallel training over MPI (mpi4py): ``mpiexec -n N charlm train …``.

Letters: ``N`` processes (ranks), ``r`` this rank, ``B`` the global batch (``--batch``), ``P``
parameters, ``m_r`` the rows rank r trains.

Synchronous data parallelism: every rank holds the whole model and trains on a contiguous share
of the B rows of each window (``share``: the first ``B mod N`` ranks take one row more). The
loss of each share is divided by the global B, not by ``m_r`` (``Model.loss(m_total=B)``), so
the sum of the ranks' gradients is the one-process gradient; one ``Allreduce`` per step sums
them, together with the loss and the ranks' votes to stop, in one flat buffer. Clipping, the
divergence guard, the optimizer and the schedule then run on the same reduced numbers on every
rank, so every rank takes every branch alike and the parameters stay identical, bit for bit.

This module imports mpi4py, which starts MPI: only ``charlm.training.mpienv.under_mpi()`` jobs
import
it. ``run_guarded`` wraps the command line so that an error on any rank ends the whole job
(``MPI_Abort``) with its message shown once, instead of leaving the other ranks waiting in a
collective for ever.
"""

from __future__ import annotations

import io
import sys
import time
import traceback

import numpy as np
from mpi4py import MPI

from ..errors import ConfigError

# A rank other than 0 that fails waits this long before it reports: if rank 0 fails too (an
# error every rank meets, e.g. a bad option), rank 0 aborts the job first and prints it once.
GRACE_SECONDS = 2.0
OUTPUT_DRAIN_SECONDS = 0.5


class Reducer:
    """What the trainer combines across ranks: gradients and loss sums (``allreduce``),
    validation sums (``sum``), the carried state for the model file (``gather_rows``)."""

    def __init__(self, comm=None):
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.is_writer = self.rank == 0
        self._flat: np.ndarray | None = None
        self._views: dict[str, np.ndarray] = {}
        self.seconds = 0.0     # time spent inside Allreduce (the step's communication)
        self.copy_seconds = 0.0   # time spent copying the gradients into the flat buffer
        self.calls = 0

    def share(self, n: int, what: str = "--batch") -> tuple[int, int]:
        """Rows [lo, hi) of n that this rank takes: contiguous, sizes differing by one at most."""
        if n < self.size:
            raise ConfigError(f"{what} {n} is smaller than the {self.size} MPI processes: each "
                              f"needs at least one row. Use {what} {self.size} or more, or "
                              "fewer processes.")
        q, extra = divmod(n, self.size)
        lo = self.rank * q + min(self.rank, extra)
        return lo, lo + q + (self.rank < extra)

    def allreduce(self, grads: dict[str, np.ndarray], scalars) -> tuple[dict, np.ndarray]:
        """Sum ``grads`` (and the few ``scalars``) over the ranks in ONE Allreduce.

        grads: name -> array, the same names and shapes on every call; scalars: k floats.
        Returns the summed gradients (views into one flat buffer of P + k numbers, valid until
        the next call) and the k summed scalars (float64).
        """
        k = len(scalars)
        if self._flat is None:
            dtype = next(iter(grads.values())).dtype
            total = sum(g.size for g in grads.values())
            self._flat = np.empty(total + k, dtype=dtype)
            at = 0
            for name, g in grads.items():
                self._views[name] = self._flat[at: at + g.size].reshape(g.shape)
                at += g.size
        # The cells return fresh gradient arrays, so they are copied in: one pass over P
        # numbers (timed apart: copy_seconds), small beside the step that made them.
        t0 = time.perf_counter()
        for name, g in grads.items():
            np.copyto(self._views[name], g)
        tail = self._flat[len(self._flat) - k:]
        tail[:] = scalars
        t1 = time.perf_counter()
        self.comm.Allreduce(MPI.IN_PLACE, self._flat, op=MPI.SUM)
        self.seconds += time.perf_counter() - t1
        self.copy_seconds += t1 - t0
        self.calls += 1
        return self._views, tail.astype(np.float64)

    def sum(self, x: float) -> float:
        """Σ over the ranks of one float64 (validation sums)."""
        return float(self.comm.allreduce(float(x), op=MPI.SUM))

    def gather_rows(self, state: list) -> list:
        """The carried state of the whole batch on every rank: each layer's (m_r, n_a) rows,
        or (a, c) pair of them, stacked in rank order into (B, n_a). Every rank gets it (a
        few rows per layer, only at saves), so checks of its shapes agree everywhere."""
        parts = self.comm.allgather(state)
        out = []
        for layer in zip(*parts):
            if isinstance(layer[0], tuple):
                out.append(tuple(np.concatenate(xs, axis=0) for xs in zip(*layer)))
            else:
                out.append(np.concatenate(layer, axis=0))
        return out

    def barrier(self) -> None:
        self.comm.Barrier()


class _Tail(io.TextIOBase):
    """A stand-in for stdout/stderr on ranks other than 0: keeps the last few thousand
    characters, shown only if this rank fails on its own."""

    def __init__(self, keep: int = 8000):
        self.keep, self.text = keep, ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:
        self.text = (self.text + s)[-self.keep:]
        return len(s)


def run_guarded(main) -> None:
    """Run the command line ``main()`` on every rank; on failure anywhere, end the whole job.

    Rank 0 alone speaks: the others' stdout and stderr are kept aside. A rank whose command
    fails (an error message and a non-zero exit, or an uncaught exception) calls MPI_Abort with
    its exit code, which the launcher turns into the end of every rank; a rank other than 0
    first waits GRACE_SECONDS and then prints what it kept, so an error met by every rank is
    shown once (by rank 0) and an error met by one rank alone is shown by that rank.
    """
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    real_err = sys.stderr
    if rank != 0:
        kept = _Tail()
        sys.stdout = sys.stderr = kept
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:   # noqa: B036  (--debug: the traceback, then the whole job ends)
        traceback.print_exc()
        code = 1
    if code == 0:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    if rank != 0:
        time.sleep(GRACE_SECONDS)
        real_err.write(f"[rank {rank} of {comm.Get_size()}] {kept.text.strip()}\n")
        real_err.flush()
    # Open MPI's launcher forwards a rank's output asynchronously, and the abort would cut
    # off the last lines (the error, "Interrupted at step …"): give it a moment.
    time.sleep(OUTPUT_DRAIN_SECONDS)
    comm.Abort(code)
