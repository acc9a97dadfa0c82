"""Gradients over distance: how much the loss at the last step still feels a hidden state k steps
earlier, ‖∂L<T>/∂a<T-k>‖ for k = 0 … K, measured on real windows of text.

Letters: ``T`` steps of a window, ``m`` windows (the batch), ``K`` the largest distance,
``n_a`` hidden size, ``V`` vocabulary size, ``L`` layers.

Backpropagation through time multiplies the upstream gradient by one Jacobian per step,
``∂L<T>/∂a<t-1> = ∂L<T>/∂a<t> · ∂a<t>/∂a<t-1>``, so in a basic RNN the norm shrinks (or grows)
about geometrically with the distance: vanishing (or exploding) gradients. GRU and LSTM add a
path through the memory cell, ``c<t> = Γu * c̃<t> + Γf * c<t-1>``, whose Jacobian is the
diagonal Γf (GRU: 1 - Γu), and which can stay near 1 for many steps.

How it is measured, with the code that trains: the model runs forward over m windows at once;
the upstream gradient is the gradient of ``L<T> = -log ŷ<T>[y<T>]`` alone (zero at every other
step), and the model's own backward pass (``Model.backward``, the cells' ``backward``) runs
from there. Each cell's backward can report the total gradient of its hidden state at every
step into an optional ``trace`` list (one ``if`` per step when absent, so training pays
nothing): one backward pass gives every k at once. The alternative, one backward pass from
each a<T-k>, would cost K passes for the same numbers.

The distance is measured in the layer ``layer`` (default: the top one). For an LSTM both
gradients are reported: ``a`` is ∂L<T>/∂a<T-k> with c<T-k> held (what reaches a<T-k> through
the next step's gates), ``c`` is ∂L<T>/∂c<T-k> through everything computed from c<T-k>,
a<T-k> = Γo tanh(c<T-k>) included (the ``dc`` of the backward pass). For the GRU the two are
the same (a<t> = c<t>).

The Jacobian ``∂a<T>/∂a<T-k>`` (optional) is computed exactly: one backward pass with the
upstream gradient e_i at a<T> gives row i of it for every k at once, so n_a seeds (batched as
n_a columns) give the whole matrix, and its spectral norm is its largest singular value. That
costs n_a windows' worth of work per window (only over the last K + 1 steps), fine for the
sizes charlm trains. Power iteration on J^T J would need the product J v as well as v^T J, and
the cells have only the latter (their backward pass), so it is not offered.

Everything runs in float64 (a float32 model is converted): the gradients of interest reach
1e-30 and below.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ConfigError, CorpusError
from ..nn.layers import log_softmax
from ..nn.model import Model

SPAN_RATIO = 1e-3          # the memory span: where the gradient falls below this × its k = 0 value
MAX_JACOBIAN_N_A = 1024    # exact Jacobians cost n_a backward columns per window
JACOBIAN_ELEMENTS = 4_000_000   # seeds per backward pass: at most this many per (T, seeds, n_a)


@dataclass
class Curve:
    """Per-window norms for one model and one path: ``norms`` (m, K + 1), column k = distance k."""

    path: str                      # "a" or "c" (LSTM memory cell); "jacobian a" / "jacobian c"
    norms: np.ndarray

    def stats(self) -> dict:
        n = self.norms
        mean = n.mean(axis=0)
        p10, med, p90 = np.percentile(n, [10, 50, 90], axis=0)
        return {"path": self.path, "mean": mean.tolist(), "median": med.tolist(),
                "p10": p10.tolist(), "p90": p90.tolist(),
                "decay_per_step": decay_per_step(mean), "memory_span": memory_span(mean)}


@dataclass
class Measured:
    label: str
    model: Model
    curves: list[Curve] = field(default_factory=list)

    def to_json(self) -> dict:
        c = self.model.config
        return {"label": self.label, "cell": c.cell, "layers": c.layers, "hidden": c.hidden,
                "embed": c.embed, "level": self.model.vocab.level,
                "curves": [cv.stats() for cv in self.curves]}


# ------------------------------------------------------------------ summaries
def decay_per_step(mean: np.ndarray) -> float | None:
    """The factor the gradient is multiplied by per step: exp of the least-squares slope of
    log(mean norm) against k, over the finite positive values (None with fewer than two)."""
    k = np.arange(len(mean))
    ok = np.isfinite(mean) & (mean > 0)
    if ok.sum() < 2:
        return None
    slope = np.polyfit(k[ok], np.log(mean[ok]), 1)[0]
    return float(np.exp(slope))


def memory_span(mean: np.ndarray, ratio: float = SPAN_RATIO) -> int | None:
    """The first distance k at which the mean norm falls below ``ratio`` × its value at k = 0;
    None when it never does within K."""
    below = np.flatnonzero(mean < ratio * mean[0])
    return int(below[0]) if len(below) else None


# ------------------------------------------------------------------ windows
def as_float64(model: Model) -> Model:
    """The same model in float64 (the gradients measured here reach far below float32's 1e-38)."""
    if model.config.dtype == "float64":
        return model
    return Model(replace(model.config, dtype="float64"), model.vocab,
                 {k: v.astype(np.float64) for k, v in model.params.items()})


def windows(ids: np.ndarray, T: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """m windows of T + 1 consecutive ids (T inputs and the last target) at random places.

    ids (N,) -> (T + 1, m).
    """
    if len(ids) < T + 1:
        raise CorpusError(f"The text has {len(ids):,} tokens, fewer than the {T + 1} a window "
                          "needs. Give a longer text, or lower --steps or --warmup.")
    starts = rng.integers(0, len(ids) - T, size=m)
    return np.stack([ids[s: s + T + 1] for s in starts], axis=1).astype(np.int64)


# ------------------------------------------------------------- measurements
def loss_gradients(model: Model, W: np.ndarray, K: int, layer: int | None = None) -> list[Curve]:
    """‖∂L<T>/∂a<T-k>‖ (and, for the LSTM, ‖∂L<T>/∂c<T-k>‖) per window for k = 0 … K.

    W (T + 1, m) windows of ids: inputs W[:-1], the last step's target W[-1]; T > K.
    Returns one Curve per path, norms (m, K + 1).
    """
    X, y = W[:-1], W[-1]
    T, m = X.shape
    if K >= T:
        raise ConfigError(f"--steps ({K}) must be smaller than the window ({T} steps).")
    layer = layer or model.config.layers
    logits, _, cache = model.forward(X, model.zero_state(m))
    # L<T> = -log ŷ<T>[y<T>] only: dL/dz is ŷ - onehot(y) in the last step's rows, 0 elsewhere
    dlogits = np.zeros_like(logits)
    last = np.exp(log_softmax(logits[(T - 1) * m:]))
    last[np.arange(m), y] -= 1.0
    dlogits[(T - 1) * m:] = last
    trace: dict = {}
    model.backward((cache, dlogits), trace=trace)
    return _curves(trace[layer][::-1], K, model.config.cell == "lstm", "")


def jacobian_norms(model: Model, W: np.ndarray, K: int, layer: int | None = None) -> list[Curve]:
    """Spectral norm of ∂a<T>/∂a<T-k> (LSTM: also of ∂a<T>/∂c<T-k>) per window, k = 0 … K,
    within one layer (its inputs from the layer below held fixed).

    W (T + 1, m) windows of ids (the last row, a target, is not used). Returns Curves with
    norms (m, K + 1).
    """
    X = W[:-1]
    T, m = X.shape
    c = model.config
    layer = layer or c.layers
    n = c.hidden
    if n > MAX_JACOBIAN_N_A:
        raise ConfigError(f"--jacobian computes the exact matrix, n_a = {n} backward columns "
                          f"per window; that is too slow above n_a = {MAX_JACOBIAN_N_A}. Drop "
                          "--jacobian.")
    opts = c.cell_opts
    h = model._inputs(X)
    state0 = model.zero_state(m)
    for l in range(1, layer):                    # the inputs of the measured layer
        h, _, _ = model.cell.forward(h, state0[l - 1], model.layer_params(l), **opts)
    lp = model.layer_params(layer)
    lstm = c.cell == "lstm"
    # ∂a<T>/∂·<T-k> for k ≤ K depends on the last K + 1 steps only (given the state before
    # them): the steps before run once, on the window alone, not once per seed
    cut = T - K - 1
    if cut > 0:
        _, s_cut, _ = model.cell.forward(h[:cut], state0[layer - 1], lp, **opts)
    else:
        s_cut = state0[layer - 1]
    h = h[cut:]
    chunk = max(1, min(n, JACOBIAN_ELEMENTS // ((K + 1) * n)))
    out = {p: np.empty((m, K + 1)) for p in (("a", "c") if lstm else ("a",))}
    eye = np.eye(n)
    for j in range(m):
        rows = {p: np.empty((K + 1, n, n)) for p in out}   # [k, i, :] = row i of ∂a<T>/∂·<T-k>
        for i0 in range(0, n, chunk):
            seeds = eye[i0: i0 + chunk]                     # (s, n): e_i for each column
            s = len(seeds)
            x = np.repeat(h[:, j: j + 1], s, axis=1)        # the window, once per seed
            start = tuple(np.repeat(v[j: j + 1], s, axis=0) for v in s_cut) if lstm \
                else np.repeat(s_cut[j: j + 1], s, axis=0)
            _, _, cache = model.cell.forward(x, start, lp, **opts)
            da = np.zeros((K + 1, s, n))
            da[-1] = seeds
            trace: list = []
            model.cell.backward(da, cache, lp, trace=trace, **opts)
            for k in range(K + 1):
                got = trace[k]
                if lstm:
                    rows["a"][k, i0: i0 + s], rows["c"][k, i0: i0 + s] = got
                else:
                    rows["a"][k, i0: i0 + s] = got
        for p in out:
            # the largest singular value of J is sqrt(λ_max(J J^T)); the symmetric
            # eigenvalue routine is several times faster than an SVD
            J = rows[p]
            out[p][j] = np.sqrt(np.maximum(np.linalg.eigvalsh(J @ J.transpose(0, 2, 1))[:, -1],
                                           0.0))
    return [Curve("jacobian " + p, v) for p, v in out.items()]


def _curves(steps: list, K: int, lstm: bool, prefix: str) -> list[Curve]:
    """Per-step traces (step T first) -> Curves of norms (m, K + 1)."""
    steps = steps[::-1][: K + 1]                      # k = 0 (step T) first
    if lstm:
        a = np.stack([np.linalg.norm(s[0], axis=1) for s in steps], axis=1)
        c = np.stack([np.linalg.norm(s[1], axis=1) for s in steps], axis=1)
        return [Curve(prefix + "a", a), Curve(prefix + "c", c)]
    return [Curve(prefix + "a", np.stack([np.linalg.norm(s, axis=1) for s in steps], axis=1))]


def measure(model: Model, label: str, ids: np.ndarray, *, steps: int = 200, warmup: int = 50,
            n_windows: int = 32, layer: int | None = None, jacobian: bool = False,
            jacobian_windows: int = 4, rng: np.random.Generator) -> Measured:
    """Everything for one model: ids (N,) the encoded text; windows of warmup + steps + 1 steps
    (the warm-up steps give the state at T - K a realistic history)."""
    if steps < 1:
        raise ConfigError(f"--steps must be at least 1 (got {steps}).")
    if warmup < 0 or n_windows < 1:
        raise ConfigError("--warmup must be 0 or more and --windows at least 1.")
    if layer is not None and not 1 <= layer <= model.config.layers:
        raise ConfigError(f"--layer must be between 1 and {model.config.layers} (got {layer}).")
    model = as_float64(model)
    W = windows(ids, warmup + steps + 1, n_windows, rng)
    res = Measured(label, model, loss_gradients(model, W, steps, layer))
    if jacobian:
        res.curves += jacobian_norms(model, W[:, :jacobian_windows], steps, layer)
    return res


# ------------------------------------------------------------------ chart
MARKS = "123456789"


def chart(series: dict[str, np.ndarray], width: int = 64, height: int = 14,
          marks: list[str] | None = None) -> list[str]:
    """A text chart of several curves on a log scale: x = distance k, y = log10 of the value.

    series: label -> values (K + 1,). Each curve gets one mark, from ``marks`` or else
    ``MARKS`` in order (the legend is the last line).
    """
    vals = [v[np.isfinite(v) & (v > 0)] for v in series.values()]
    vals = [v for v in vals if len(v)]
    if not vals:
        return ["(nothing to draw: every value is zero)"]
    lo = np.floor(np.log10(min(v.min() for v in vals)))
    hi = np.ceil(np.log10(max(v.max() for v in vals)))
    hi = max(hi, lo + 1)
    grid = [[" "] * width for _ in range(height)]
    row_of = lambda e: int(round((hi - e) / (hi - lo) * (height - 1)))  # noqa: E731
    legend = []
    for mark, (label, v) in zip(marks or MARKS, series.items()):
        legend.append(f"{mark} {label}")
        K = len(v) - 1
        for col in range(width):
            k = round(col * K / (width - 1)) if width > 1 else 0
            if not (np.isfinite(v[k]) and v[k] > 0):
                continue
            cell = grid[row_of(np.log10(v[k]))]
            cell[col] = mark if cell[col] in (" ", mark) else "#"   # two curves meet
    # a tick at every decade (every few, when there are more decades than rows)
    every = int(np.ceil((hi - lo) / (height - 1)))
    ticks = {row_of(e): f"1e{int(e):+d}" for e in np.arange(hi, lo - 0.5, -every)}
    lines = [f"{ticks.get(r, ''):>6} |" + "".join(grid[r]) for r in range(height)]
    K = max(len(v) for v in series.values()) - 1
    lines.append(" " * 7 + "+" + "-" * width)
    lines.append(" " * 8 + "k = 0" + f"k = {K}".rjust(width - 5))
    lines.append("   " + "   ".join(legend) + "   # several")
    return lines
