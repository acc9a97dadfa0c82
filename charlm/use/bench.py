"""Throughput of this machine: training, evaluation and generation tokens per second.

Each measurement runs in a fresh Python process (``python -m charlm.use.bench WORKER-JSON``) so
that its peak resident memory is its own. Data are random token ids of the config's
vocabulary: speed does not depend on what the tokens are.

FLOPs are counted the usual analytic way (matrix products only): a recurrent layer with ``g``
gate blocks, input width ``I`` and hidden size ``H`` costs ``2 g H (I + H)`` per token forward,
the output layer ``2 H V``; training costs three forwards (forward, and two products per
weight in backward). An embedding lookup costs nothing; one-hot inputs count ``I = V``.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

from ..nn.model import Model, ModelConfig
from ..nn.optim import clip_gradients, make_optimizer
from ..nn.sampling import sample
from ..text.vocab import SPECIALS, Vocab
from ..training.heap import keep_freed_memory

GATES = {"rnn": 1, "gru": 3, "lstm": 4}

# The standard configs of the reference benchmarks: V, E, H, L, B, T.
CONFIGS = {
    "C1": {"vocab": 65, "embed": 64, "hidden": 256, "layers": 2, "batch": 32, "bptt": 64},
    "C2": {"vocab": 65, "embed": 128, "hidden": 512, "layers": 2, "batch": 64, "bptt": 128},
    "W1": {"vocab": 10000, "embed": 200, "hidden": 200, "layers": 2, "batch": 20, "bptt": 35},
    # min-char-rnn's model (one-hot inputs, one tanh RNN layer of 100, Adagrad), batched as
    # charlm trains it.
    "MC": {"vocab": 65, "embed": 0, "hidden": 100, "layers": 1, "batch": 32, "bptt": 25,
           "optimizer": "adagrad", "lr": 0.1},
}


def flops_per_token(cell: str, vocab: int, embed: int, hidden: int, layers: int,
                    mode: str = "train") -> float:
    g = GATES[cell]
    fwd = 0.0
    width = embed or vocab
    for _ in range(layers):
        fwd += 2 * g * hidden * (width + hidden)
        width = hidden
    fwd += 2 * hidden * vocab
    return fwd * (3 if mode == "train" else 1)


def sgemm_peak(n: int = 1024, seconds: float = 1.0) -> float:
    """Best float32 matrix-product GFLOP/s of NumPy here (n×n by n×n)."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=c)
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        best = max(best, 2.0 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what the platform module says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _openblas_runtime() -> dict:
    """The OpenBLAS kernel (core) and thread count NumPy's BLAS chose at run time, asked of
    the loaded library itself; empty where that is not OpenBLAS or cannot be found. The build
    configuration names the kernels it was compiled for, not the one this CPU got."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower()
                            and ln.split()[-1].startswith("/")})
    except OSError:
        return {}
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        info = {}
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                core = getattr(lib, f"{prefix}_get_corename{suffix}", None)
                threads = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if core is not None and "kernel" not in info:
                    core.restype = ctypes.c_char_p
                    info["kernel"] = core().decode()
                if threads is not None and "threads" not in info:
                    threads.restype = ctypes.c_int
                    info["threads"] = int(threads())
        if info:
            return info
    return {}


def machine_info() -> dict:
    """What a throughput figure depends on: CPU model, cores, NumPy and its BLAS (library,
    version, the kernel it runs here, its threads), so a table can be traced to its machine."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:        # not on Linux
        usable = os.cpu_count()
    blas: dict = {}
    try:
        deps = np.__config__.CONFIG.get("Build Dependencies", {})
        blas = {k: deps.get("blas", {}).get(k) for k in ("name", "version")}
    except AttributeError:        # NumPy < 1.25 has no CONFIG dict
        pass
    runtime = _openblas_runtime()
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "cores_usable": usable,
            "numpy": np.__version__, "python": platform.python_version(),
            "blas": blas.get("name") or "unknown", "blas_version": blas.get("version"),
            "blas_kernel": runtime.get("kernel"), "blas_threads": runtime.get("threads"),
            "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE")}


def describe_machine(m: dict) -> str:
    """One line for a table: 'Intel Xeon …, 2 of 2 cores, NumPy 2.4.6, scipy-openblas 0.3.31
    (SkylakeX kernel, 2 threads)'."""
    blas = m["blas"] + (f" {m['blas_version']}" if m.get("blas_version") else "")
    extra = [x for x in (m.get("blas_kernel") and f"{m['blas_kernel']} kernel",
                         m.get("blas_threads") and f"{m['blas_threads']} threads",
                         m.get("openblas_coretype_env") and
                         f"OPENBLAS_CORETYPE={m['openblas_coretype_env']}") if x]
    if extra:
        blas += f" ({', '.join(extra)})"
    return (f"{m['cpu']}, {m['cores_usable']} of {m['cores']} cores, NumPy {m['numpy']}, "
            f"{blas}")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _model(cfg: dict, cell: str):
    V = cfg["vocab"]
    vocab = Vocab([*SPECIALS, *(f"t{i}" for i in range(V - len(SPECIALS)))], "word")
    mcfg = ModelConfig(cell=cell, layers=cfg["layers"], hidden=cfg["hidden"],
                       embed=cfg["embed"], dropout=0.0)
    return Model.create(mcfg, vocab, np.random.default_rng(0))


def run_worker(spec: dict) -> dict:
    """One measurement in this process: spec has config, cell, mode, steps, warmup."""
    keep_freed_memory()   # as the charlm command and the trainer do
    cfg = dict(CONFIGS[spec["config"]])
    cell, mode = spec["cell"], spec["mode"]
    model = _model(cfg, cell)
    rng = np.random.default_rng(1)
    B, T, V = cfg["batch"], cfg["bptt"], cfg["vocab"]
    times: list[float] = []
    if mode == "generate":
        n = spec.get("tokens", 2000)
        sample(model, rng, length=50, stop_at_eos=False)   # warm-up
        t = time.perf_counter()
        sample(model, rng, length=n, stop_at_eos=False)
        tok_s = n / (time.perf_counter() - t)
    else:
        opt = make_optimizer(cfg.get("optimizer", "adam"), cfg.get("lr", 1e-3))
        state = model.zero_state(B)
        output = model.output_layer() if mode == "eval" else None   # once, as evaluate does
        dtype = np.uint8 if V <= 256 else np.uint16
        for i in range(spec["warmup"] + spec["steps"]):
            X = rng.integers(0, V, (T, B)).astype(dtype)
            Y = rng.integers(0, V, (T, B)).astype(dtype)
            t = time.perf_counter()
            if mode == "train":
                _, _, state, cache = model.loss(X, Y, state, rng)
                grads, _ = model.backward(cache)
                clip_gradients(grads, 5.0)
                opt.update(model.params, grads)
            else:   # evaluation as train.evaluate runs it: the forward-only path
                _, state = model.target_log_probs(X, Y, state, output=output)
            if i >= spec["warmup"]:
                times.append(time.perf_counter() - t)
        tok_s = B * T / float(np.median(times))
    fpt = flops_per_token(cell, V, cfg["embed"], cfg["hidden"], cfg["layers"], mode)
    return {"config": spec["config"], "cell": cell, "mode": mode, "tokens_per_s": tok_s,
            "flops_per_token": fpt, "gflops": tok_s * fpt / 1e9,
            "peak_rss_mb": peak_rss_mb(), "batch": 1 if mode == "generate" else B,
            **{k: cfg[k] for k in ("vocab", "embed", "hidden", "layers")}}


def measure(spec: dict) -> dict:
    """Run one measurement in a fresh process and return its result."""
    proc = subprocess.run([sys.executable, "-m", "charlm.use.bench", json.dumps(spec)],
                          capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


CELLS = ("rnn", "gru", "lstm")
MODES = ("train", "eval", "generate")


def default_plan(configs: list[str], cells: list[str] | None = None,
                 modes: list[str] | None = None) -> list[dict]:
    """The measurements of ``charlm bench``, one dict per row.

    Without ``cells``: C1 with every cell, C2 and W1 with the LSTM (the rows of the reference
    table). Cells that are asked for are measured on every config. MC is min-char-rnn's model,
    an RNN, so it runs only when the RNN is included. Without ``modes``: every mode, but no
    evaluation for C2 and MC (the reference table has none).
    """
    plan = []
    for c in configs:
        if c == "MC":
            row_cells = ["rnn"] if cells is None or "rnn" in cells else []
        elif cells is None:
            row_cells = list(CELLS) if c == "C1" else ["lstm"]
        else:
            row_cells = list(cells)
        row_modes = modes if modes is not None else [
            m for m in MODES if not (m == "eval" and c in ("C2", "MC"))]
        plan += [{"config": c, "cell": cell, "mode": mode}
                 for cell in row_cells for mode in row_modes]
    return plan


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    spec.setdefault("steps", 20)
    spec.setdefault("warmup", 3)
    print(json.dumps(run_worker(spec)))
