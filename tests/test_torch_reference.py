"""charlm's forward and backward passes against PyTorch (float64), over random shapes.

The basic RNN and the LSTM are compared with ``torch.nn.RNN`` / ``torch.nn.LSTM``. The GRU is
the course's (Γr multiplies c<t-1> before the product with W_c), which is not ``torch.nn.GRU``,
and the peephole LSTM has no torch module: those are written below from the course equations
in torch autograd, so torch still computes every gradient independently of charlm.

Layouts: charlm fuses gate blocks along the first axis of W_ax (G n_a, n_x), W_aa (G n_a, n_a)
and a single bias b (G n_a,). torch has weight_ih, weight_hh, bias_ih and bias_hh; bias_hh is
set to zero, so b corresponds to bias_ih. LSTM blocks: charlm [u, f, o, c], torch [i, f, g, o].
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import flat_state, random_state

from charlm.nn.cells import gru, lstm, rnn
from charlm.nn.model import Model, ModelConfig
from charlm.use.gradcheck import tiny_vocab

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL, ATOL = 1e-9, 1e-11  # float64 on both sides: only summation order differs

# (T, m, n_x, n_a): a single step and unit sizes, then a few ordinary random shapes
SHAPES = [(1, 1, 1, 1), (5, 3, 4, 6), (7, 2, 9, 3), (3, 4, 2, 8)]
SHAPE_IDS = ["T{}m{}x{}a{}".format(*s) for s in SHAPES]

# torch's LSTM block k is charlm's block LSTM_ORDER[k] (the library's one map)
LSTM_ORDER = lstm.TORCH_ORDER


def close(actual, expected, what=""):
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)


def tt(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def reorder(w, n_a, order):
    """The gate blocks of a fused array (G n_a, ...) in another order."""
    return np.concatenate([w[k * n_a:(k + 1) * n_a] for k in order])


def draw(shape, cell, opts):
    T, m, n_x, n_a = shape
    rng = np.random.default_rng([T, m, n_x, n_a, len(cell.__name__)])
    params = cell.init_params(n_x, n_a, rng, np.float64, **opts)
    x = rng.standard_normal((T, m, n_x))
    a0, c0 = rng.standard_normal((m, n_a)), rng.standard_normal((m, n_a))
    up = rng.standard_normal((T, m, n_a))  # the upstream gradient dL/da<t>
    return params, x, a0, c0, up


def load_torch_module(net, params, n_a, order=None, layer=0):
    """Copy charlm's fused weights into layer ``layer`` of a torch.nn.RNN/LSTM."""
    W_ax, W_aa, b = params["W_ax"], params["W_aa"], params["b"]
    if order is not None:
        W_ax, W_aa, b = (reorder(w, n_a, order) for w in (W_ax, W_aa, b))
    with torch.no_grad():
        getattr(net, f"weight_ih_l{layer}").copy_(tt(W_ax))
        getattr(net, f"weight_hh_l{layer}").copy_(tt(W_aa))
        getattr(net, f"bias_ih_l{layer}").copy_(tt(b))
        getattr(net, f"bias_hh_l{layer}").zero_()


def torch_grads(net, n_a, order=None, layer=0):
    """The torch module's weight gradients in charlm's names and layout."""
    g = {"W_ax": getattr(net, f"weight_ih_l{layer}").grad.numpy(),
         "W_aa": getattr(net, f"weight_hh_l{layer}").grad.numpy(),
         "b": getattr(net, f"bias_ih_l{layer}").grad.numpy()}
    if order is not None:  # LSTM_ORDER is its own inverse
        g = {k: reorder(v, n_a, order) for k, v in g.items()}
    return g


# ------------------------------------------------ the course equations in torch
def course_gru(x, c0, W_ax, W_aa, b, simplified):
    """x (T, m, n_x), c0 (m, n_a) -> c (T, m, n_a); blocks [u, r, c] ([u, c] simplified)."""
    n = c0.shape[1]
    blk = lambda w, k: w[k * n:(k + 1) * n]  # noqa: E731
    kc = 1 if simplified else 2
    c_prev, out = c0, []
    for x_t in x:
        gamma_u = torch.sigmoid(x_t @ blk(W_ax, 0).T + c_prev @ blk(W_aa, 0).T + blk(b, 0))
        if simplified:
            rc = c_prev
        else:
            gamma_r = torch.sigmoid(x_t @ blk(W_ax, 1).T + c_prev @ blk(W_aa, 1).T + blk(b, 1))
            rc = gamma_r * c_prev                       # Γr applied before the product
        c_tilde = torch.tanh(x_t @ blk(W_ax, kc).T + rc @ blk(W_aa, kc).T + blk(b, kc))
        c_prev = gamma_u * c_tilde + (1 - gamma_u) * c_prev
        out.append(c_prev)
    return torch.stack(out)


def course_lstm(x, a0, c0, W_ax, W_aa, b, p=None):
    """x (T, m, n_x) -> a (T, m, n_a), c<T>; blocks [u, f, o, c]; peepholes p [u, f, o]."""
    n = a0.shape[1]
    blk = lambda w, k: w[k * n:(k + 1) * n]  # noqa: E731
    a_prev, c_prev, out = a0, c0, []
    for x_t in x:
        z = [x_t @ blk(W_ax, k).T + a_prev @ blk(W_aa, k).T + blk(b, k) for k in range(4)]
        peep = [c_prev * blk(p, k) if p is not None else 0.0 for k in range(3)]
        gamma_u, gamma_f, gamma_o = (torch.sigmoid(z[k] + peep[k]) for k in range(3))
        c_tilde = torch.tanh(z[3])
        c_prev = gamma_u * c_tilde + gamma_f * c_prev
        a_prev = gamma_o * torch.tanh(c_prev)
        out.append(a_prev)
    return torch.stack(out), c_prev


# -------------------------------------------------------------------- the cells
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_rnn_matches_torch_nn_rnn(activation, shape):
    T, m, n_x, n_a = shape
    params, x, a0, _, up = draw(shape, rnn, {"activation": activation})
    a, a_T, cache = rnn.forward(x, a0, params, activation=activation)
    a, a_T = a.copy(), a_T.copy()
    dx, da0, grads = rnn.backward(up, cache, params, activation=activation)

    net = torch.nn.RNN(n_x, n_a, nonlinearity=activation).double()
    load_torch_module(net, params, n_a)
    xt, h0 = tt(x, True), tt(a0[None], True)
    out, h_n = net(xt, h0)
    (out * tt(up)).sum().backward()

    close(a, out, "a")
    close(a_T, h_n[0], "a<T>")
    for k, g in torch_grads(net, n_a).items():
        close(grads[k], g, k)
    close(dx, xt.grad, "dx")
    close(da0, h0.grad[0], "da0")


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_lstm_matches_torch_nn_lstm(shape):
    T, m, n_x, n_a = shape
    params, x, a0, c0, up = draw(shape, lstm, {})
    a, (a_T, c_T), cache = lstm.forward(x, (a0, c0), params)
    a, a_T, c_T = a.copy(), a_T.copy(), c_T.copy()
    dx, (da0, dc0), grads = lstm.backward(up, cache, params)

    net = torch.nn.LSTM(n_x, n_a).double()
    load_torch_module(net, params, n_a, LSTM_ORDER)
    xt, h0, cc0 = tt(x, True), tt(a0[None], True), tt(c0[None], True)
    out, (h_n, c_n) = net(xt, (h0, cc0))
    (out * tt(up)).sum().backward()

    close(a, out, "a")
    close(a_T, h_n[0], "a<T>")
    close(c_T, c_n[0], "c<T>")
    for k, g in torch_grads(net, n_a, LSTM_ORDER).items():
        close(grads[k], g, k)
    close(dx, xt.grad, "dx")
    close(da0, h0.grad[0], "da0")
    close(dc0, cc0.grad[0], "dc0")


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_peephole_lstm_matches_course_equations_in_torch(shape):
    params, x, a0, c0, up = draw(shape, lstm, {"peephole": True})
    a, (a_T, c_T), cache = lstm.forward(x, (a0, c0), params, peephole=True)
    a, a_T, c_T = a.copy(), a_T.copy(), c_T.copy()
    dx, (da0, dc0), grads = lstm.backward(up, cache, params, peephole=True)

    tp = {k: tt(v, True) for k, v in params.items()}
    xt, ta0, tc0 = tt(x, True), tt(a0, True), tt(c0, True)
    out, c_last = course_lstm(xt, ta0, tc0, tp["W_ax"], tp["W_aa"], tp["b"], tp["p"])
    (out * tt(up)).sum().backward()

    close(a, out, "a")
    close(a_T, out[-1], "a<T>")
    close(c_T, c_last, "c<T>")
    assert set(grads) == set(tp) == {"W_ax", "W_aa", "b", "p"}
    for k in tp:
        close(grads[k], tp[k].grad, k)
    close(dx, xt.grad, "dx")
    close(da0, ta0.grad, "da0")
    close(dc0, tc0.grad, "dc0")


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("simplified", [False, True], ids=["full", "simplified"])
def test_gru_matches_course_equations_in_torch(simplified, shape):
    params, x, c0, _, up = draw(shape, gru, {"simplified": simplified})
    c, c_T, cache = gru.forward(x, c0, params, simplified=simplified)
    c, c_T = c.copy(), c_T.copy()
    dx, dc0, grads = gru.backward(up, cache, params, simplified=simplified)

    tp = {k: tt(v, True) for k, v in params.items()}
    xt, tc0 = tt(x, True), tt(c0, True)
    out = course_gru(xt, tc0, tp["W_ax"], tp["W_aa"], tp["b"], simplified)
    (out * tt(up)).sum().backward()

    close(c, out, "c")
    close(c_T, out[-1], "c<T>")
    for k in tp:
        close(grads[k], tp[k].grad, k)
    close(dx, xt.grad, "dx")
    close(dc0, tc0.grad, "dc0")


def test_course_gru_is_not_torch_nn_gru():
    """The reason the GRU is compared with hand-written equations: torch's nn.GRU applies Γr
    after the product (r * (W_hn h + b_hn)), so with the same weights it computes other values."""
    shape = (4, 2, 3, 5)
    T, m, n_x, n_a = shape
    params, x, c0, _, _ = draw(shape, gru, {})
    c, _, _ = gru.forward(x, c0, params)
    net = torch.nn.GRU(n_x, n_a).double()
    # torch blocks [r, z, n] with h' = (1 - z) n + z h: z = 1 - Γu, so negate the u block
    order = [1, 0, 2]
    W_ax, W_aa, b = (reorder(w, n_a, order) for w in (params["W_ax"], params["W_aa"],
                                                      params["b"]))
    for w in (W_ax, W_aa, b):
        w[n_a:2 * n_a] *= -1
    with torch.no_grad():
        net.weight_ih_l0.copy_(tt(W_ax))
        net.weight_hh_l0.copy_(tt(W_aa))
        net.bias_ih_l0.copy_(tt(b))
        net.bias_hh_l0.zero_()
        out, _ = net(tt(x), tt(c0[None]))
        # ... the gates agree (same first step when Γr plays no part: c0 = 0) ...
        out0, _ = net(tt(x), torch.zeros(1, m, n_a, dtype=torch.float64))
    c_zero, _, _ = gru.forward(x, np.zeros((m, n_a)), params)
    close(c_zero[0], out0[0], "first step from c0 = 0")
    # ... but the models differ
    assert np.abs(c - out.numpy()).max() > 1e-3


# ------------------------------------------------------------- the whole model
MODEL_CASES = [
    # cell, opts, T, m, V, hidden, embed, layers
    ("lstm", {}, 5, 3, 11, 6, 4, 2),
    ("lstm", {}, 1, 1, 3, 2, 1, 2),
    ("lstm", {}, 6, 2, 9, 4, 0, 2),      # one-hot inputs
    ("rnn", {"activation": "tanh"}, 4, 3, 8, 5, 3, 2),
    ("rnn", {"activation": "relu"}, 4, 2, 8, 5, 3, 3),
    ("gru", {}, 5, 2, 10, 4, 3, 2),
    ("gru", {"simplified": True}, 3, 3, 6, 5, 0, 1),
    ("lstm", {"peephole": True}, 4, 2, 7, 3, 5, 2),
]
MODEL_IDS = ["{}{}-T{}m{}V{}H{}E{}L{}".format(c, "-" + "-".join(map(str, o.values()))
                                              if o else "", *rest)
             for c, o, *rest in MODEL_CASES]


def torch_model_loss(model, X, Y, state):
    """The same model in torch: nn.Embedding (or one-hot) -> layers -> nn.Linear, the
    cross-entropy summed over all positions and divided by the batch size m. Tied weights:
    the output layer's weight is the embedding's own tensor (``weight = emb.weight``, as
    PyTorch's word language model ties them), so autograd sums the two uses' gradients."""
    cfg, P, V = model.config, model.params, model.V
    T, m = X.shape
    leaves = {k: tt(v, True) for k, v in P.items() if not k.startswith("L")}
    Xt = torch.tensor(X.astype(np.int64))
    if cfg.embed:
        emb = torch.nn.Embedding(V, cfg.embed).double()
        with torch.no_grad():
            emb.weight.copy_(leaves["E"])
        h = emb(Xt)
        leaves["E"] = emb.weight
    else:
        h = F.one_hot(Xt, V).double()
    nets, layer_leaves, state_leaves = [], [], []
    for l in range(1, cfg.layers + 1):
        lp = model.layer_params(l)
        n_in = h.shape[-1]
        s = state[l - 1]
        if cfg.cell == "rnn":
            net = torch.nn.RNN(n_in, cfg.hidden, nonlinearity=cfg.activation).double()
            load_torch_module(net, lp, cfg.hidden)
            h0 = tt(s[None], True)
            h, _ = net(h, h0)
            nets.append((l, net, None))
            state_leaves.append(h0)
        elif cfg.cell == "lstm" and not cfg.peephole:
            net = torch.nn.LSTM(n_in, cfg.hidden).double()
            load_torch_module(net, lp, cfg.hidden, LSTM_ORDER)
            h0, c0 = tt(s[0][None], True), tt(s[1][None], True)
            h, _ = net(h, (h0, c0))
            nets.append((l, net, LSTM_ORDER))
            state_leaves += [h0, c0]
        else:
            tp = {k: tt(v, True) for k, v in lp.items()}
            layer_leaves.append((l, tp))
            if cfg.cell == "gru":
                c0 = tt(s, True)
                h = course_gru(h, c0, tp["W_ax"], tp["W_aa"], tp["b"], cfg.simplified)
                state_leaves.append(c0)
            else:
                a0, c0 = tt(s[0], True), tt(s[1], True)
                h, _ = course_lstm(h, a0, c0, tp["W_ax"], tp["W_aa"], tp["b"], tp["p"])
                state_leaves += [a0, c0]
    W_y = leaves["E"] if cfg.tie_weights else leaves["W_y"]
    logits = h.reshape(T * m, -1) @ W_y.T + leaves["b_y"]
    nll = F.cross_entropy(logits, torch.tensor(Y.reshape(-1).astype(np.int64)),
                          reduction="sum")
    L = nll / m
    L.backward()
    grads = {k: v.grad.numpy() for k, v in leaves.items()}
    for l, net, order in nets:
        for k, g in torch_grads(net, cfg.hidden, order).items():
            grads[f"L{l}.{k}"] = g
    for l, tp in layer_leaves:
        for k, v in tp.items():
            grads[f"L{l}.{k}"] = v.grad.numpy()
    return L.item(), nll.item(), logits.detach().numpy(), grads, [s.grad for s in state_leaves]


def check_against_torch(model, T: int, m: int, rng):
    """Logits, loss, NLL and every gradient (parameters and initial state) of ``model`` on
    random ids against the same model in torch; returns (X, Y, state, torch's logits)."""
    V = len(model.vocab)
    X = rng.integers(0, V, (T, m)).astype(np.uint8)
    Y = rng.integers(0, V, (T, m)).astype(np.uint8)
    state = random_state(model, m, rng)

    logits = model.forward(X, state)[0].copy()
    L, nll, _, cache = model.loss(X, Y, state)
    grads, dstate = model.backward(cache)

    tL, tnll, tlogits, tgrads, tdstate = torch_model_loss(model, X, Y, state)
    close(logits, tlogits, "logits")
    assert L == pytest.approx(tL, rel=1e-12)
    assert nll == pytest.approx(tnll, rel=1e-12)
    assert nll == pytest.approx(L * m, rel=1e-12)
    assert set(grads) == set(tgrads) == set(model.params)
    for k in grads:
        close(grads[k], tgrads[k], k)
    ours = flat_state(dstate)
    assert len(ours) == len(tdstate)
    for d, td in zip(ours, tdstate):
        close(d, td.reshape(d.shape), "initial state")
    return X, Y, state, tlogits


@pytest.mark.parametrize("cell, opts, T, m, V, hidden, embed, layers", MODEL_CASES,
                         ids=MODEL_IDS)
def test_model_loss_and_gradients_match_torch(cell, opts, T, m, V, hidden, embed, layers):
    cfg = ModelConfig(cell=cell, layers=layers, hidden=hidden, embed=embed, dropout=0.0,
                      dtype="float64", **opts)
    rng = np.random.default_rng([T, m, V, hidden, embed, layers])
    model = Model.create(cfg, tiny_vocab(V), rng)
    check_against_torch(model, T, m, rng)


@pytest.mark.parametrize("cell, opts", [("lstm", {}), ("gru", {}), ("rnn", {"activation": "tanh"}),
                                        ("lstm", {"peephole": True})],
                         ids=["lstm", "gru", "rnn", "lstm-peephole"])
def test_tied_model_matches_torch(cell, opts):
    """--tie-weights: logits, loss and every gradient (E's the sum of its two uses) against
    the same model in torch with the decoder's weight the embedding's tensor."""
    cfg = ModelConfig(cell=cell, layers=2, hidden=6, embed=6, dropout=0.0, dtype="float64",
                      tie_weights=True, **opts)
    T, m, V = 5, 3, 11
    rng = np.random.default_rng(21)
    model = Model.create(cfg, tiny_vocab(V), rng)
    assert "W_y" not in model.params
    X, Y, state, tlogits = check_against_torch(model, T, m, rng)
    # the forward-only paths (evaluation, scoring, sampling) use E as W_y too
    logp, _ = model.target_log_probs(X, Y, state)
    close(logp, -F.cross_entropy(
        torch.tensor(tlogits), torch.tensor(Y.reshape(-1).astype(np.int64)),
        reduction="none").numpy().reshape(T, m), "target log-probabilities")
    close(model.log_probs(X, state)[0].reshape(T * m, V),
          torch.log_softmax(torch.tensor(tlogits), dim=1), "log-probabilities")
    step_logits, _ = model.step(X[0], state)
    close(step_logits, tlogits[:m], "one step (sampling)")
