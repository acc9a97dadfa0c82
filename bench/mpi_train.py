"""Training throughput of one standard config, in one process or under ``mpiexec -n N``.

    python bench/mpi_train.py --config C1 --steps 20            # one process
    mpiexec -n 2 python bench/mpi_train.py --config C1 --steps 20
    mpiexec -n 4 python bench/mpi_train.py --config C2 --weak   # batch per rank fixed

Runs the trainer's own step (``Trainer.train_step``: forward, backward, the all-reduce,
clipping, Adam) on random token ids of the config's vocabulary, ``--warmup`` steps untimed, then
``--steps`` timed between two barriers, and prints one JSON line (rank 0): tokens/s of the whole
job, milliseconds per step, and the all-reduce's time and share of the step (rank 0's).
Without --weak the global batch is the config's B, split over the ranks; with --weak each rank
trains B rows (the global batch grows with N). Run it with PYTHONPATH at the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import charlm  # noqa: E402,F401  (pins BLAS under MPI before NumPy is imported)
from charlm.tasks.lm import LMTask  # noqa: E402
from charlm.tasks.stream import Corpus
from charlm.training.mpienv import BLAS_VARS, under_mpi  # noqa: E402  (before NumPy: see mpienv)
from charlm.training.trainer import TrainConfig, Trainer  # noqa: E402
from charlm.use.bench import CONFIGS, _model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="C1", choices=["C1", "C2", "W1"])
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--weak", action="store_true", help="B rows per rank (weak scaling)")
    ap.add_argument("--label", default="", help="copied into the JSON line")
    a = ap.parse_args()

    reducer = None
    if under_mpi():
        from charlm.training.distributed import Reducer
        reducer = Reducer()
    n = reducer.size if reducer else 1
    c = CONFIGS[a.config]
    B = c["batch"] * (n if a.weak else 1)
    model = _model(c, a.cell)
    rng = np.random.default_rng(0)
    ids = rng.integers(2, c["vocab"], B * c["bptt"] * (a.warmup + a.steps + 1)).astype(np.uint16)
    cfg = TrainConfig(batch=B, bptt=c["bptt"], eval_every=0, valid_fraction=0,
                      eval_batch=max(n, 1))
    with tempfile.TemporaryDirectory() as d:
        task = LMTask(Corpus(model.vocab, ids, None), cfg, model, reducer)
        tr = Trainer(model, task, cfg, Path(d) / "m.npz",
                     reducer=reducer)

        def steps(k0: int, k1: int) -> None:
            for k in range(k0, k1):
                tr.train_step(k)

        steps(0, a.warmup)
        if reducer:
            reducer.barrier()
            reducer.seconds, reducer.copy_seconds, reducer.calls = 0.0, 0.0, 0
        t0 = time.perf_counter()
        steps(a.warmup, a.warmup + a.steps)
        if reducer:
            reducer.barrier()
        dt = time.perf_counter() - t0
    if reducer and not reducer.is_writer:
        return
    comm = reducer.seconds if reducer else 0.0
    print(json.dumps({
        "label": a.label, "config": a.config, "cell": a.cell, "ranks": n,
        "blas_threads": next((os.environ[v] for v in BLAS_VARS if v in os.environ), "default"),
        "batch": B, "batch_per_rank": B // n, "weak": a.weak, "steps": a.steps,
        "tokens_per_s": round(a.steps * B * c["bptt"] / dt, 1),
        "step_ms": round(1e3 * dt / a.steps, 2),
        "allreduce_ms": round(1e3 * comm / a.steps, 3),
        "allreduce_share": round(comm / dt, 4),
        "copy_ms": round(1e3 * (reducer.copy_seconds if reducer else 0.0) / a.steps, 3),
        "params": model.n_params()}), flush=True)


if __name__ == "__main__":
    main()
