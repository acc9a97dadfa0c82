"""Numerical gradient checks: every analytic backward pass against centred differences.

All checks run in float64 on small random shapes with a random upstream gradient, so a wrong
term anywhere shows up. For an array ``w`` the numerical gradient of a scalar ``f`` is the
five-point centred difference for every element ``i``::

    (-f(w + 2h e_i) + 8 f(w + h e_i) - 8 f(w - h e_i) + f(w - 2h e_i)) / 12h

whose truncation error is O(h^4), so a step large enough to keep round-off small (h = 1e-3)
is still exact to about 1e-10. (Basic RNNs with relu use h = 1e-4, and an element whose
estimate changes when the step is halved has a kink within reach and is measured again with a
smaller step.) The error reported for an array is the largest element-wise relative error::

    max(|a_i - n_i| - ATOL, 0) / max(|a_i| + |n_i|, FLOOR * max_j |n_j|)

``FLOOR`` and ``ATOL`` only matter for elements whose gradient is zero or near it (embedding
rows of ids that do not occur, relu units that are off): they are judged against the array's
scale, and round-off of 1e-11 is forgiven, instead of dividing round-off by zero. An array
passes when that error is under ``TOLERANCE``, i.e. when every element has
``|a_i - n_i| < TOLERANCE * max(|a_i| + |n_i|, FLOOR * max_j |n_j|) + ATOL``.

What a reader is shown (``charlm gradcheck``) is the raw relative error, with nothing taken
off, ``max |a_i - n_i| / max(|a_i| + |n_i|, FLOOR * max_j |n_j|)``, and the largest absolute
difference, beside the tolerance: the allowance decides a pass, it does not hide the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from ..nn.cells import CELLS
from ..nn.layers import embed_backward, embed_forward, softmax_xent
from ..nn.model import Model, ModelConfig
from ..text.vocab import SPECIALS, Vocab

TOLERANCE = 1e-6   # the largest relative error a check may show and pass
STEP = 1e-3        # h of the centred difference
FLOOR = 1e-4
ATOL = 1e-11       # absolute round-off allowance of the centred difference
RELU_STEP = 1e-4   # smaller, so that few steps cross the kink of a relu

CELL_VARIANTS = [
    ("rnn", {"activation": "tanh"}, "rnn tanh"),
    ("rnn", {"activation": "relu"}, "rnn relu"),
    ("gru", {"simplified": False}, "gru"),
    ("gru", {"simplified": True}, "gru simplified"),
    ("lstm", {"peephole": False}, "lstm"),
    ("lstm", {"peephole": True}, "lstm peephole"),
]


class RelError(float):
    """The error that is checked against TOLERANCE (a float), carrying what is shown beside
    it: ``raw``, the relative error with no allowance taken off, and ``abs``, the largest
    absolute difference |a_i - n_i|."""

    raw: float = 0.0
    abs: float = 0.0


@dataclass
class CheckResult:
    component: str
    param: str
    max_rel_error: float          # checked: the ATOL allowance taken off each difference
    raw_rel_error: float = 0.0    # shown: nothing taken off
    max_abs_error: float = 0.0

    @property
    def passed(self) -> bool:
        return self.max_rel_error < TOLERANCE


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> RelError:
    """The largest element-wise relative error (see the module's docstring), as checked; its
    ``raw`` and ``abs`` attributes hold the raw relative error and the largest difference."""
    if not analytic.size:
        return RelError(0.0)
    scale = max(float(np.abs(numeric).max()), 1e-12)
    denom = np.maximum(np.abs(analytic) + np.abs(numeric), FLOOR * scale)
    diff = np.abs(analytic - numeric)
    # ATOL forgives round-off where the true gradient is zero (a dead relu unit, a whole
    # initial state that no output depends on): there the centred difference is ~1e-12.
    err = RelError(float(np.max(np.maximum(diff - ATOL, 0.0) / denom)))
    err.raw = float(np.max(diff / denom))
    err.abs = float(diff.max())
    return err


def numerical_grad(f: Callable[[], float], w: np.ndarray, h: float = STEP,
                   kinks: bool = False) -> np.ndarray:
    """Five-point centred differences of f() with respect to every element of w (changed in
    place, then restored).

    ``kinks``: f is only piecewise smooth (relu). An element whose estimates with steps h and
    h/2 disagree has a kink within reach; it is measured again with a ten times smaller step,
    up to three times.
    """
    g = np.zeros_like(w, dtype=np.float64)
    flat, gflat = w.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        step = h
        est = _five_point(f, flat, i, step)
        for _ in range(3 if kinks else 0):
            half = _five_point(f, flat, i, step / 2)
            if abs(half - est) <= 1e-7 * (abs(half) + abs(est)) + ATOL:
                break
            step /= 10
            est = _five_point(f, flat, i, step)
        gflat[i] = est
    return g


def _five_point(f, flat, i, h) -> float:
    old = flat[i]
    f2, f1, fm1, fm2 = [_at(f, flat, i, old + d) for d in (2 * h, h, -h, -2 * h)]
    flat[i] = old
    return (-f2 + 8 * f1 - 8 * fm1 + fm2) / (12 * h)


def _at(f, flat, i, value) -> float:
    flat[i] = value
    return f()


def _state_arrays(state) -> list[np.ndarray]:
    return list(state) if isinstance(state, tuple) else [state]


def check_cell(cell_name: str, opts: dict, rng: np.random.Generator,
               T: int = 4, m: int = 3, n_x: int = 5, n_a: int = 6) -> list[tuple[str, float]]:
    """BPTT of one cell over T steps: weights, inputs x and the initial state(s)."""
    cell = CELLS[cell_name]
    params = cell.init_params(n_x, n_a, rng, np.float64, **opts)
    x = rng.standard_normal((T, m, n_x))
    if cell_name == "lstm":
        state = (rng.standard_normal((m, n_a)), rng.standard_normal((m, n_a)))
    else:
        state = rng.standard_normal((m, n_a))
    upstream = rng.standard_normal((T, m, n_a))  # L = Σ a * upstream, so dL/da = upstream
    relu = opts.get("activation") == "relu"
    h = RELU_STEP if relu else STEP

    def f() -> float:
        return float((cell.forward(x, state, params, **opts)[0] * upstream).sum())

    _, _, cache = cell.forward(x, state, params, **opts)
    dx, dstate, grads = cell.backward(upstream, cache, params, **opts)
    rows = [(k, rel_error(grads[k], numerical_grad(f, params[k], h, relu))) for k in params]
    rows.append(("x", rel_error(dx, numerical_grad(f, x, h, relu))))
    names = ["a0", "c0"] if cell_name == "lstm" else ["a0"]
    for name, s, ds in zip(names, _state_arrays(state), _state_arrays(dstate)):
        rows.append((name, rel_error(ds, numerical_grad(f, s, h, relu))))
    return rows


def check_embedding(rng: np.random.Generator, V: int = 7, n_e: int = 4) -> list:
    ids = rng.integers(0, V, size=(5, 3))
    E = rng.standard_normal((V, n_e))
    upstream = rng.standard_normal((5, 3, n_e))
    f = lambda: float((embed_forward(ids, E) * upstream).sum())  # noqa: E731
    return [("E", rel_error(embed_backward(ids, upstream, V), numerical_grad(f, E)))]


def check_softmax(rng: np.random.Generator, N: int = 12, V: int = 7, m: int = 3) -> list:
    logits = rng.standard_normal((N, V)) * 3
    y = rng.integers(0, V, size=N)
    f = lambda: softmax_xent(logits.copy(), y, m)[0]  # noqa: E731
    return [("logits", rel_error(softmax_xent(logits.copy(), y, m)[2], numerical_grad(f, logits)))]


def tiny_vocab(V: int) -> Vocab:
    return Vocab([*SPECIALS, *[chr(ord("a") + i) for i in range(V - len(SPECIALS))]], "char")


def check_model(cell_name: str, opts: dict, rng: np.random.Generator, embed: int = 4,
                layers: int = 2, T: int = 4, m: int = 2, V: int = 7, hidden: int = 5,
                tie_weights: bool = False) -> list:
    """The whole stacked model end to end: L = Σ_t L<t> / m with respect to every parameter and
    the initial state of every layer. ``tie_weights``: W_y = E (give embed = hidden), whose
    gradient is then the sum of its input and output uses'."""
    cfg = ModelConfig(cell=cell_name, layers=layers, hidden=hidden, embed=embed, dropout=0.0,
                      dtype="float64", tie_weights=tie_weights, **opts)
    model = Model.create(cfg, tiny_vocab(V), rng)
    X = rng.integers(0, V, size=(T, m))
    Y = rng.integers(0, V, size=(T, m))
    state = [tuple(rng.standard_normal((m, hidden)) for _ in _state_arrays(s))
             if isinstance(s, tuple) else rng.standard_normal((m, hidden))
             for s in model.zero_state(m)]
    f = lambda: model.loss(X, Y, state)[0]  # noqa: E731
    grads, dstate = model.backward(model.loss(X, Y, state)[3])
    relu = opts.get("activation") == "relu"
    h = RELU_STEP if relu else STEP
    rows = [(k, rel_error(grads[k], numerical_grad(f, model.params[k], h, relu)))
            for k in model.params]
    for l, (s, ds) in enumerate(zip(state, dstate), start=1):
        for j, (a, da) in enumerate(zip(_state_arrays(s), _state_arrays(ds))):
            rows.append((f"L{l}.{'ac'[j]}0", rel_error(da, numerical_grad(f, a, h, relu))))
    return rows


def run_all(seed: int = 0) -> Iterator[CheckResult]:
    """Every check charlm has, one result per (component, parameter)."""
    rng = np.random.default_rng(seed)
    for cell_name, opts, label in CELL_VARIANTS:
        for param, err in check_cell(cell_name, opts, rng):
            yield _result(f"{label} (BPTT, T=4)", param, err)
    for param, err in check_embedding(rng):
        yield _result("embedding", param, err)
    for param, err in check_softmax(rng):
        yield _result("softmax cross-entropy", param, err)
    for cell_name, opts, label in CELL_VARIANTS:
        for param, err in check_model(cell_name, opts, rng):
            yield _result(f"model 2x{label}", param, err)
    for param, err in check_model("lstm", {}, rng, embed=0, layers=1):
        yield _result("model 1xlstm one-hot", param, err)
    for param, err in check_model("lstm", {}, rng, embed=5, hidden=5, tie_weights=True):
        yield _result("model 2xlstm tied (W_y = E)", param, err)


def _result(component: str, param: str, err: float) -> CheckResult:
    return CheckResult(component, param, float(err), getattr(err, "raw", float(err)),
                       getattr(err, "abs", float("nan")))
