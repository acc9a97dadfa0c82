"""Data-parallel training over MPI (charlm.distributed, the trainer's reducer hook).

The first tests need no MPI: the launcher detection, and the mathematics the MPI runs rest on
(shares of a batch, averaged over the whole batch, with the whole batch's dropout masks, add up
to the one-process gradient). The rest launch ``mpiexec -n N python -m charlm train …`` and
compare with one process; they skip where mpi4py or a launcher is absent (install the extra:
``pip install -e '.[test,mpi]'``). Each launch takes a second or two.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import flat_state, make_model, random_state

from charlm.nn.layers import RowShare
from charlm.training import checkpoint
from charlm.training.mpienv import BLAS_VARS, pin_blas_threads, under_mpi, world_rank, world_size

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------- without MPI
def test_launcher_detection_reads_mpich_and_open_mpi_variables():
    assert world_size({}) == 1 and not under_mpi({})
    assert world_size({"PMI_SIZE": "3", "PMI_RANK": "2"}) == 3
    assert world_rank({"PMI_SIZE": "3", "PMI_RANK": "2"}) == 2
    env = {"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "1"}
    assert under_mpi(env) and world_rank(env) == 1
    assert not under_mpi({"PMI_SIZE": "1", "PMI_RANK": "0"})   # mpiexec -n 1: one process


def test_blas_pinned_under_mpi_unless_the_user_chose():
    env = {"PMI_SIZE": "2"}
    assert pin_blas_threads(env) and all(env[v] == "1" for v in BLAS_VARS)
    env = {"PMI_SIZE": "2", "OMP_NUM_THREADS": "2"}
    assert not pin_blas_threads(env) and env == {"PMI_SIZE": "2", "OMP_NUM_THREADS": "2"}
    env = {}
    assert not pin_blas_threads(env) and env == {}


def test_charlm_does_not_import_mpi4py_outside_mpi():
    code = ("import sys, charlm.cli, charlm.training.trainer, charlm.training.runs; "
            "print('mpi4py' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("opts", [{}, {"input_dropout": 0.25}], ids=["layers", "and-input"])
@pytest.mark.parametrize("cuts", [(3,), (2, 5), (1, 2, 4)])
def test_shares_of_a_batch_add_up_to_the_whole_batch(cuts, opts):
    """Rows split as N processes split them: the shares' losses and gradients (averaged over
    the whole m, with the whole batch's dropout masks sliced, the input's too) sum to the
    whole batch's."""
    model = make_model("lstm", opts, dropout=0.3, dtype="float64", hidden=6, layers=2)
    m, T = 7, 5
    rng = np.random.default_rng(3)
    X = rng.integers(0, model.V, (T, m))
    Y = rng.integers(0, model.V, (T, m))
    state = random_state(model, m, rng)
    L, nll, _, cache = model.loss(X, Y, state, np.random.default_rng(9))
    grads, _ = model.backward(cache)
    bounds = [0, *cuts, m]
    L_sum, nll_sum = 0.0, 0.0
    g_sum = {k: np.zeros_like(v) for k, v in grads.items()}
    new_rows = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = [tuple(x[lo:hi] for x in s) for s in state]
        share = RowShare(np.random.default_rng(9), m, lo, hi)
        Ls, nlls, new_state, cache = model.loss(X[:, lo:hi], Y[:, lo:hi], part, share, m)
        g, _ = model.backward(cache)
        L_sum, nll_sum = L_sum + Ls, nll_sum + nlls
        for k in g_sum:
            g_sum[k] += g[k]
        new_rows.append(flat_state(new_state))
    assert L_sum == pytest.approx(L, rel=1e-12) and nll_sum == pytest.approx(nll, rel=1e-12)
    for k, v in grads.items():
        np.testing.assert_allclose(g_sum[k], v, rtol=1e-10, atol=1e-13, err_msg=k)


def test_the_trainer_refuses_a_sentence_task_with_a_reducer(tmp_path):
    """Only the language model takes a share of each batch: another task under MPI is a
    clear error before anything is trained (a reducer stand-in: it is never called)."""
    from types import SimpleNamespace

    from charlm.errors import ConfigError
    from charlm.training.trainer import TrainConfig, Trainer
    model = make_model("gru", hidden=4)
    with pytest.raises(ConfigError, match="--task tag cannot be trained over MPI yet"):
        Trainer(model, SimpleNamespace(name="tag"), TrainConfig(), tmp_path / "m.npz",
                reducer=object())


# ---------------------------------------------------------------- with MPI
def _launcher() -> str | None:
    if importlib.util.find_spec("mpi4py") is None:
        return None
    beside = Path(sys.executable).with_name("mpiexec")   # the MPI wheel's, in this venv
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = _launcher()
# Open MPI refuses root and more processes than cores unless told; MPICH needs no flags.
OMPI_FLAGS = (["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
              if MPIEXEC and Path(MPIEXEC).with_name("ompi_info").exists() else [])
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="needs mpi4py and mpiexec "
                               "(pip install -e '.[test,mpi]')")

TINY = ["--cell", "lstm", "--hidden", "16", "--embed", "8", "--layers", "2", "--batch", "7",
        "--bptt", "10", "--dropout", "0.3", "--eval-every", "10", "--eval-batch", "5",
        "--seed", "5"]

# Runs the command line on every rank and, when training returns, writes this rank's
# parameters to rank<r>.npz: the test compares the ranks bit for bit.
DUMP = """
import os, sys
import numpy as np
from charlm.training.trainer import Trainer
from charlm.cli import main
real = Trainer.run_loop
def run_loop(self):
    reason = real(self)
    r = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
    np.savez(f"rank{r}.npz", **self.model.params)
    return reason
Trainer.run_loop = run_loop
sys.argv = ["charlm", *sys.argv[1:]]
main()
"""

# The same, but rank 1 fails in its third step: an error on one rank alone.
FAIL = """
import os, sys
from charlm.training.trainer import Trainer
from charlm.cli import main
real = Trainer.train_step
def train_step(self, k):
    if os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK")) == "1" \\
            and self.run.step == 2:
        raise RuntimeError("boom on rank one")
    return real(self, k)
Trainer.train_step = train_step
sys.argv = ["charlm", *sys.argv[1:]]
main()
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("mpi")
    text = (ROOT / "corpora" / "tinyshakespeare.txt").read_text(encoding="utf-8")[:30000]
    (d / "c.txt").write_text(text, encoding="utf-8")
    return d / "c.txt"


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for v in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"):
        env.pop(v, None)
    return env


def _mpi(n: int, args: list, cwd: Path, script: str | None = None, timeout: float = 120):
    head = [sys.executable, "-c", script] if script else [sys.executable, "-m", "charlm"]
    return subprocess.run([MPIEXEC, *OMPI_FLAGS, "-n", str(n), *head, *map(str, args)], cwd=cwd,
                          env=_env(), capture_output=True, text=True, timeout=timeout)


def _one(args: list, cwd: Path):
    return subprocess.run([sys.executable, "-m", "charlm", *map(str, args)], cwd=cwd,
                          env=_env(), capture_output=True, text=True, timeout=120)


def _assert_close(a: dict, b: dict, rtol: float = 1e-5) -> None:
    """Every float array of a within rtol of b, relative to the array's largest entry."""
    keys = [k for k in a if np.asarray(a[k]).dtype.kind == "f"]
    assert keys and set(keys) <= set(b)
    for k in keys:
        scale = max(float(np.abs(a[k]).max()), 1e-30)
        assert np.abs(a[k] - b[k]).max() <= rtol * scale, k


@pytest.fixture(scope="module")
def one_process(corpus) -> dict:
    """The reference: one process, 20 steps."""
    r = _one(["train", corpus, *TINY, "--steps", "20", "--out", "one.npz"], corpus.parent)
    assert r.returncode == 0, r.stderr
    with np.load(corpus.parent / "one.npz") as f:
        return {k: f[k] for k in f.files}


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_n_ranks_train_as_one_process_does(n, corpus, one_process, tmp_path):
    """7 rows over 2 ranks (4+3) or 3 ranks (3+2+2), dropout on, validation sharded: the model
    file equals one process's within 1e-5 (float32), and the ranks agree bit for bit."""
    r = _mpi(n, ["train", corpus, *TINY, "--steps", "20", "--out", "m.npz"], tmp_path, DUMP)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "m.npz") as f:
        saved = {k: f[k] for k in f.files}
    _assert_close(one_process, saved)
    ranks = [np.load(tmp_path / f"rank{i}.npz") for i in range(n)]
    for k in ranks[0].files:
        for other in ranks[1:]:
            assert np.array_equal(ranks[0][k], other[k]), k
        assert np.array_equal(ranks[0][k], saved[f"train/param/{k}"]), k
    assert r.stdout.count("Trained 20 steps") == 1          # rank 0 alone speaks
    assert "MPI: the all-reduce took" in r.stderr
    log = [json.loads(line) for line in (tmp_path / "m.log.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in
           (corpus.parent / "one.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [r["step"] for r in ref] == [10, 20]   # one writer
    for r, q in zip(log, ref):   # the sharded validation and the reduced training loss
        assert r["valid_loss"] == pytest.approx(q["valid_loss"], rel=1e-6)
        assert r["train_loss"] == pytest.approx(q["train_loss"], rel=1e-6)


@needs_mpi
def test_resume_with_the_same_and_another_number_of_ranks(corpus, one_process, tmp_path):
    """10 steps on 2 ranks, 5 more on 2, the last 5 on 3 (the file holds the whole batch's
    state, so the shares are cut anew): the same model as 20 steps in one process. (--steps
    with --resume counts the steps of this invocation.)"""
    base = ["train", corpus, *TINY, "--out", "m.npz"]
    for n, steps, more in ((2, 10, []), (2, 5, ["--resume"]), (3, 5, ["--resume"])):
        r = _mpi(n, [*base, "--steps", steps, *more], tmp_path)
        assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "m.npz") as f:
        _assert_close(one_process, {k: f[k] for k in f.files})


@needs_mpi
def test_an_error_on_every_rank_is_shown_once(tmp_path):
    r = _mpi(2, ["train", tmp_path / "missing.txt", "--steps", "1"], tmp_path, timeout=60)
    assert r.returncode != 0
    assert r.stderr.count("Error:") == 1, r.stderr
    assert "missing.txt" in r.stderr


@needs_mpi
@pytest.mark.parametrize("task", ["tag", "classify"])
def test_sentence_tasks_are_refused_under_mpi_in_one_line(task, tmp_path):
    r = _mpi(2, ["train", "--task", task, "--steps", "1"], tmp_path, timeout=60)
    assert r.returncode == 2        # a usage error, as the command line reports them
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, r.stderr
    assert errors[0].startswith(f"Error: --task {task} cannot be trained over MPI yet (only "
                                "the language model can; this job has 2 processes). Run it "
                                "without mpiexec."), r.stderr
    assert not list(tmp_path.iterdir())    # nothing written


@needs_mpi
def test_an_error_on_one_rank_aborts_the_job(corpus, tmp_path):
    """Rank 1 raises in its third step while rank 0 waits in the all-reduce: without the
    abort the job would hang for ever (the timeout would fail the test)."""
    t0 = time.monotonic()
    r = _mpi(2, ["train", corpus, *TINY, "--steps", "50", "--out", "m.npz"], tmp_path, FAIL,
             timeout=60)
    assert r.returncode != 0
    assert r.stderr.count("boom on rank one") == 1, r.stderr
    assert time.monotonic() - t0 < 30


def _ranks_of(pid: int) -> dict[int, int]:
    """{rank: pid} of the processes under the launcher ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    found, todo = {}, [pid]
    while todo:
        q = todo.pop()
        todo.extend(children.get(q, []))
        try:
            env = (Path("/proc") / str(q) / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in env:
            if item.startswith((b"PMI_RANK=", b"OMPI_COMM_WORLD_RANK=")) and q != pid:
                found[int(item.split(b"=")[1])] = q
    return found


def _signal_rank_1(corpus, tmp_path, sig, settle: float = 0.0) -> tuple[int, str]:
    """A 2-process training job writing m.npz: once its first save is there (and ``settle``
    seconds more), ``sig`` to rank 1 alone. Returns the job's exit status and stderr."""
    cmd = [MPIEXEC, *OMPI_FLAGS, "-n", "2", sys.executable, "-m", "charlm", "train",
           str(corpus), *TINY, "--steps", "100000", "--eval-every", "3", "--out", "m.npz"]
    job = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "m.npz").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(settle)
        ranks = _ranks_of(job.pid)
        assert 1 in ranks, ranks
        os.kill(ranks[1], sig)
        _, stderr = job.communicate(timeout=30)
    finally:
        if job.poll() is None:
            job.kill()
    return job.returncode, stderr


@needs_mpi
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_a_killed_rank_ends_the_job_and_the_model_file_is_intact(corpus, tmp_path):
    # a few more saves after the first: the kill may land in the middle of one
    returncode, _ = _signal_rank_1(corpus, tmp_path, signal.SIGKILL, settle=0.5)
    assert returncode != 0
    model, meta, arrays = checkpoint.load(tmp_path / "m.npz")
    assert meta["run"]["step"] >= 3 and "train/param/W_y" in arrays
    r = _one(["train", corpus, "--resume", "--out", "m.npz", "--steps",
              meta["run"]["step"] + 1], tmp_path)   # and it is resumable, by one process
    assert r.returncode == 0, r.stderr


@needs_mpi
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_step(corpus, tmp_path):
    """SIGINT to rank 1 alone (rank 0 sees no signal): the stop vote travels in the step's
    all-reduce, every rank stops after that step, rank 0 saves a resumable file and says so."""
    returncode, stderr = _signal_rank_1(corpus, tmp_path, signal.SIGINT)
    assert returncode != 0
    assert stderr.count("Interrupted at step") == 1, stderr[-2000:]
    _, meta, _ = checkpoint.load(tmp_path / "m.npz")
    assert meta["run"]["finished"] is False
    assert f"Interrupted at step {meta['run']['step']};" in stderr
