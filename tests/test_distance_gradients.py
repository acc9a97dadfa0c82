"""``charlm.gradients``: gradients over distance, against centred differences of the forward
pass (float64) and against a one-unit linear RNN whose gradient is exactly w^k."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_model

from charlm.nn.layers import log_softmax
from charlm.nn.model import Model, ModelConfig
from charlm.use import gradients as G
from charlm.use.gradcheck import tiny_vocab

EPS = 1e-6
TOL = 1e-6


def _loss_last(model, X, y, state):
    """L<T> = -log ŷ<T>[y] per window, from the state at the step before X[0]."""
    logp, _ = model.log_probs(X, state)
    return -logp[-1, np.arange(X.shape[1]), y]


def _perturbed(state, layer, part, j, i, d):
    """A copy of ``state`` with unit i of window j in layer ``layer`` moved by d.

    For the LSTM, part 0 moves a<t> alone; part 1 moves c<t> and recomputes what is computed
    from it, a<t> = Γo<t> tanh(c<t>) (Γo<t> read back as a<t> / tanh(c<t>)): the total
    derivative with respect to c<t> that the cell's backward pass reports."""
    new = []
    for l, s in enumerate(state, 1):
        if isinstance(s, tuple):
            a, c = (x.copy() for x in s)
            if l == layer and part == 0:
                a[j, i] += d
            elif l == layer:
                gamma_o = a[j, i] / np.tanh(c[j, i])
                c[j, i] += d
                a[j, i] = gamma_o * np.tanh(c[j, i])
            s = (a, c)
        else:
            s = s.copy()
            if l == layer:
                s[j, i] += d
        new.append(s)
    return new


def _fd_grad(model, W, k, part=0):
    """∂L<T>/∂a<T-k> (top layer) by centred differences: run to step T-k, nudge the state,
    run on to T. Returns (m, n_a)."""
    X, y = W[:-1], W[-1]
    T, m = X.shape
    t = T - 1 - k                                         # 0-based index of step T-k
    _, state = model.log_probs(X[: t + 1], model.zero_state(m))
    L = model.config.layers
    g = np.zeros((m, model.config.hidden))
    for j in range(m):
        for i in range(model.config.hidden):
            up = _loss_last(model, X[t + 1:], y, _perturbed(state, L, part, j, i, EPS))[j]
            dn = _loss_last(model, X[t + 1:], y, _perturbed(state, L, part, j, i, -EPS))[j]
            g[j, i] = (up - dn) / (2 * EPS)
    return g


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_loss_gradients_match_finite_differences(cell):
    model = make_model(cell, layers=2, hidden=4, V=7, seed=3)
    rng = np.random.default_rng(5)
    W = rng.integers(0, 7, size=(9, 3))                   # T = 8 steps, 3 windows
    K = 6
    curves = {c.path: c.norms for c in G.loss_gradients(model, W, K)}
    assert set(curves) == ({"a", "c"} if cell == "lstm" else {"a"})
    # k = 0: ∂L<T>/∂a<T> = W_y^T (ŷ<T> - onehot(y)), by hand
    logits, _, _ = model.forward(W[:-1], model.zero_state(3))
    p = np.exp(log_softmax(logits[-3:]))
    p[np.arange(3), W[-1]] -= 1.0
    np.testing.assert_allclose(curves["a"][:, 0], np.linalg.norm(p @ model.params["W_y"], axis=1),
                               rtol=1e-12)
    for k in (1, 3, K):
        for part, path in enumerate(["a", "c"] if cell == "lstm" else ["a"]):
            fd = np.linalg.norm(_fd_grad(model, W, k, part), axis=1)
            np.testing.assert_allclose(curves[path][:, k], fd, rtol=TOL, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_jacobian_norms_match_finite_differences(cell):
    """Spectral norm of ∂a<T>/∂a<T-k> in the top layer, from a Jacobian built column by column
    with centred differences of the forward pass."""
    model = make_model(cell, layers=2, hidden=3, V=7, seed=4)
    rng = np.random.default_rng(6)
    W = rng.integers(0, 7, size=(7, 2))                   # T = 6, 2 windows
    X = W[:-1]
    T, m = X.shape
    K = T - 1                    # from the first step: no steps run before the seeded ones
    got = {c.path: c.norms for c in G.jacobian_norms(model, W, K)}
    n, L = 3, model.config.layers
    for k in (0, 2, K):
        t = T - 1 - k
        _, state = model.log_probs(X[: t + 1], model.zero_state(m))

        def a_T(st):
            if t == T - 1:
                s = st[L - 1]
            else:
                _, after = model.log_probs(X[t + 1:], st)
                s = after[L - 1]
            return s[0] if isinstance(s, tuple) else s

        for part, path in enumerate(["a", "c"] if cell == "lstm" else ["a"]):
            for j in range(m):
                J = np.empty((n, n))
                for i in range(n):
                    up = a_T(_perturbed(state, L, part, j, i, EPS))[j]
                    dn = a_T(_perturbed(state, L, part, j, i, -EPS))[j]
                    J[:, i] = (up - dn) / (2 * EPS)
                np.testing.assert_allclose(got["jacobian " + path][j, k], np.linalg.norm(J, 2),
                                           rtol=TOL, atol=1e-12)


def _linear_rnn(w: float) -> Model:
    """One unit, one-hot inputs, relu: a<t> = relu(w a<t-1> + u_x + b). With w, u, b > 0 every
    pre-activation is positive, where relu is the identity: a linear RNN, ∂a<T>/∂a<T-k> = w^k."""
    vocab = tiny_vocab(5)
    cfg = ModelConfig(cell="rnn", layers=1, hidden=1, embed=0, activation="relu", dropout=0.0,
                      dtype="float64")
    model = Model.create(cfg, vocab, np.random.default_rng(0))
    model.params["L1.W_aa"][:] = w
    model.params["L1.W_ax"][:] = np.linspace(0.1, 0.5, 5)[None]
    model.params["L1.b"][:] = 0.05
    return model


def test_one_unit_linear_rnn_gradient_is_w_to_the_k():
    w = 0.8
    model = _linear_rnn(w)
    rng = np.random.default_rng(1)
    W = rng.integers(0, 5, size=(41, 4))
    K = 35
    # the regime is linear: every a<t> (= every pre-activation) is positive
    # every a<t> positive: relu is the identity on this window (a<t> = relu(z<t>) > 0)
    h, _, _ = model.encode(W[:-1], model.zero_state(4))
    assert (h > 0).all()
    (grad,) = G.loss_gradients(model, W, K)
    k = np.arange(K + 1)
    np.testing.assert_allclose(grad.norms / grad.norms[:, :1], np.broadcast_to(w ** k, (4, K + 1)),
                               rtol=1e-12)
    (jac,) = G.jacobian_norms(model, W, K)
    np.testing.assert_allclose(jac.norms, np.broadcast_to(w ** k, (4, K + 1)), rtol=1e-12)
    st = grad.stats()
    assert st["decay_per_step"] == pytest.approx(w, rel=1e-9)
    # the first k with 0.8^k < 1e-3 is 31 (0.8^30 = 1.24e-3, 0.8^31 = 9.9e-4)
    assert st["memory_span"] == 31
    assert G.memory_span(np.array([1.0, 0.5])) is None


def test_measure_float32_model_and_windows():
    model = make_model("lstm", layers=1, hidden=4, V=7, dtype="float32", seed=2)
    ids = np.random.default_rng(0).integers(0, 7, size=500)
    res = G.measure(model, "lstm", ids, steps=10, warmup=5, n_windows=6, jacobian=True,
                    jacobian_windows=2, rng=np.random.default_rng(0))
    paths = [c.path for c in res.curves]
    assert paths == ["a", "c", "jacobian a", "jacobian c"]
    assert res.curves[0].norms.shape == (6, 11) and res.curves[2].norms.shape == (2, 11)
    st = res.to_json()["curves"][0]
    n = res.curves[0].norms
    assert st["median"][3] == pytest.approx(float(np.median(n[:, 3])))
    assert st["p90"][3] == pytest.approx(float(np.percentile(n[:, 3], 90)))
    with pytest.raises(G.CorpusError):
        G.measure(model, "x", ids[:10], steps=10, warmup=5, rng=np.random.default_rng(0))
    lines = G.chart({"a": np.array([1.0, 0.1, 0.01]), "c": np.array([0.5, 1e-3, 1e-4])},
                    width=3, height=5)
    # one row per decade from 1e+0 down to 1e-4; both curves start in the top row ('#')
    assert lines[:5] == ["  1e+0 |#  ", "  1e-1 | 1 ", "  1e-2 |  1", "  1e-3 | 2 ",
                         "  1e-4 |  2"]
    assert lines[-1].strip().startswith("1 a   2 c")
