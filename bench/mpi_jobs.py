"""Data-parallel jobs: training throughput of `charlm train`'s step over MPI
(bench/mpi_train.py), one process against N ranks. They need mpi4py and an mpiexec
(``pip install 'charlm[mpi]'``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .harness import Col, Harness, JobError, median, num

MPI_COLS = [Col("config", lambda r: r["config"], True), Col("run", lambda r: r["label"], True),
            Col("ranks", lambda r: r["ranks"]), Col("batch", lambda r: r["batch"]),
            Col("tokens/s", lambda r: num(r["tokens_per_s"])),
            Col("step ms", lambda r: f"{r['step_ms']:.1f}"),
            Col("all-reduce ms", lambda r: f"{r['allreduce_ms']:.2f}"),
            Col("share", lambda r: f"{100 * r['allreduce_share']:.1f} %")]


def _mpiexec(h: Harness, wheels: str | None = None) -> tuple[str, dict]:
    """An mpiexec that this Python's mpi4py can use, and the environment to run it in; from
    wheels (mpich and mpi4py for this Python) installed under a temporary prefix if there is
    none and ``wheels`` names their folder."""
    env = h.env()
    found = shutil.which("mpiexec") or shutil.which("mpiexec", path=str(Path(sys.executable)
                                                                        .parent))
    has_mpi4py = subprocess.run([sys.executable, "-c", "import mpi4py.MPI"], env=env,
                                capture_output=True).returncode == 0
    if found and has_mpi4py:
        return found, env
    if not wheels or not list(Path(wheels).glob("*.whl")):
        raise JobError("no mpiexec with mpi4py here: pip install 'charlm[mpi]' (or give "
                       "--wheels DIR with the mpich and mpi4py wheels for this Python).")
    prefix = Path(h.out) / "mpi-prefix"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--prefix", prefix, *Path(wheels).glob("*.whl")], check=True,
                   env={**env, "PIP_ROOT_USER_ACTION": "ignore"})
    site = next(prefix.glob("lib/python3*/site-packages"))
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{site}{os.pathsep}{env['PYTHONPATH']}"
    env["LD_LIBRARY_PATH"] = f"{prefix / 'lib'}{os.pathsep}{env.get('LD_LIBRARY_PATH', '')}"
    return str(prefix / "bin" / "mpiexec"), env


def _blas(env: dict, n: int) -> dict:
    return {**env, **{v: str(n) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                          "MKL_NUM_THREADS")}}


def mpi_ab_options(p) -> None:
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--configs", default="C1,C2")
    p.add_argument("--steps-c1", type=int, default=15)
    p.add_argument("--steps-c2", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)


def mpi_ab(h: Harness, a) -> None:
    """On a small machine: one process with 2 BLAS threads against 2 ranks of 1 BLAS thread
    each, the same global batch, alternated --rounds times; medians."""
    mpiexec, env = _mpiexec(h)
    rows = []
    for _ in range(a.rounds):
        for cfg in a.configs.split(","):
            steps = a.steps_c1 if cfg == "C1" else a.steps_c2
            args = ["--config", cfg, "--steps", steps, "--warmup", a.warmup]
            rows += h.run(h.py("mpi_train.py", *args, "--label", "1 process x 2 threads"),
                          env=_blas(env, 2))
            rows += h.run([mpiexec, "-n", 2, *h.py("mpi_train.py", *args,
                                                   "--label", "2 ranks x 1 thread")], env=env)
    groups = {}
    for r in rows:
        groups.setdefault((r["config"], r["label"]), []).append(r)
    med = [{**g[0], **{k: median(x[k] for x in g)
                       for k in ("tokens_per_s", "step_ms", "allreduce_ms", "allreduce_share")}}
           for g in groups.values()]
    h.table(med, MPI_COLS, title=f"medians of {a.rounds} alternated rounds")


def mpi_scaling_options(p) -> None:
    p.add_argument("--ranks", default="2,4,8")
    p.add_argument("--configs", default="C1,C2")
    p.add_argument("--steps-c1", type=int, default=6)
    p.add_argument("--steps-c2", type=int, default=3)
    p.add_argument("--wheels", help="a folder with the mpich and mpi4py wheels, used when "
                                    "there is no mpiexec with mpi4py")


def mpi_scaling(h: Harness, a) -> None:
    """On a many-core machine (16 cores or more): 1 process x 1 and x 2 BLAS threads, then 2,
    4, 8 ranks of one BLAS thread each with the config's batch split over the ranks (strong
    scaling) and on every rank (weak scaling); the all-reduce's share of a step."""
    mpiexec, env = _mpiexec(h, a.wheels)
    pin = shutil.which("taskset") is not None
    rows = []
    for cfg in a.configs.split(","):
        steps = a.steps_c1 if cfg == "C1" else a.steps_c2
        args = ["--config", cfg, "--steps", steps, "--warmup", 1]
        for n, cores in ((1, "0"), (2, "0,1")):
            rows += h.run(h.py("mpi_train.py", *args, "--label", f"1x{n}"),
                          cores=cores if pin else None, env=_blas(env, n))
        for n in a.ranks.split(","):
            for mode in ("strong", "weak"):
                extra = ["--weak"] if mode == "weak" else []
                # charlm pins each rank to one BLAS thread; hydra binds each rank to a core
                rows += h.run([mpiexec, "-bind-to", "core", "-n", n,
                               *h.py("mpi_train.py", *args, *extra, "--label", f"{n}x1 {mode}")],
                              env=env, timeout=60)
    base = {r["config"]: r["tokens_per_s"] for r in rows if r.get("label") == "1x1"}
    h.table([r for r in rows if "config" in r], MPI_COLS + [
        Col("B/rank", lambda r: r["batch_per_rank"]),
        Col("vs 1x1", lambda r: f"{r['tokens_per_s'] / base[r['config']]:.2f}")])
