"""Was this process started by an MPI launcher? Read from the environment alone.

``mpiexec -n N charlm train …`` starts N copies of charlm; the launcher tells each one its rank
and the job's size through environment variables (MPICH and Intel MPI: ``PMI_RANK`` /
``PMI_SIZE``; Open MPI: ``OMPI_COMM_WORLD_RANK`` / ``OMPI_COMM_WORLD_SIZE``; PMIx launchers:
``PMIX_RANK`` with ``OMPI_COMM_WORLD_SIZE`` beside it). This module imports nothing heavy, so it
can run before NumPy is imported, and mpi4py (slow to import, and it starts MPI) is imported
only by ``charlm.training.distributed``, only when the job has more than one process.
"""

from __future__ import annotations

import os

SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")
# OpenBLAS reads its own variable first, then OMP_NUM_THREADS; MKL likewise.
BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def world_size(environ=os.environ) -> int:
    """The number of processes the launcher started (1 when not started by one)."""
    for name in SIZE_VARS:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def world_rank(environ=os.environ) -> int:
    for name in RANK_VARS:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def under_mpi(environ=os.environ) -> bool:
    """True when this process is one of several started by an MPI launcher."""
    return world_size(environ) > 1


def pin_blas_threads(environ=os.environ) -> bool:
    """Under MPI, one BLAS thread per rank: N ranks each with its own thread pool as wide as
    the machine would oversubscribe the cores N times over. Left alone when the user set any
    of the thread variables (they decide), and useless once NumPy is imported, so charlm's
    package calls this before it imports NumPy. Returns True if it set them."""
    if not under_mpi(environ) or any(name in environ for name in BLAS_VARS):
        return False
    for name in BLAS_VARS:
        environ[name] = "1"
    return True
