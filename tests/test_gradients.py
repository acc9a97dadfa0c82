"""Gradient checks: every analytic backward pass against centred differences (float64).

The checks themselves live in ``charlm.gradcheck`` (the ``charlm gradcheck`` command runs the
same ones); here every row they report must be under ``gradcheck.TOLERANCE``, and further tests
show that the checks can fail: a backward pass that is off by 0.1 % anywhere is reported.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import VARIANT_PARAMS, flat_state, make_model, random_state

from charlm.nn import layers, optim
from charlm.nn.cells import gru, lstm, rnn
from charlm.nn.model import Model, ModelConfig
from charlm.use import gradcheck
from charlm.use.gradcheck import TOLERANCE, numerical_grad, rel_error


def _assert_rows_pass(rows, expected_names):
    assert [name for name, _ in rows] == list(expected_names)
    bad = {name: err for name, err in rows if not err < TOLERANCE}
    assert not bad, f"relative errors over {TOLERANCE}: {bad}"


def _cell_row_names(cell, opts):
    params = gradcheck.CELLS[cell].init_params(2, 3, np.random.default_rng(0), np.float64, **opts)
    return [*params, "x", *(["a0", "c0"] if cell == "lstm" else ["a0"])]


# ------------------------------------------------------------------ the cells
@pytest.mark.parametrize("shape", [dict(), dict(T=7, m=1, n_x=2, n_a=3), dict(T=1, m=4, n_x=3,
                                                                                  n_a=2)],
                         ids=["T4m3", "T7m1", "T1m4"])
@pytest.mark.parametrize("cell, opts", VARIANT_PARAMS)
def test_cell_bptt_gradients(cell, opts, shape):
    """Weights, inputs x and initial state(s) of one cell, backpropagated through time."""
    rows = gradcheck.check_cell(cell, opts, np.random.default_rng(11), **shape)
    _assert_rows_pass(rows, _cell_row_names(cell, opts))


def test_embedding_gradient():
    _assert_rows_pass(gradcheck.check_embedding(np.random.default_rng(12)), ["E"])


def test_softmax_cross_entropy_gradient():
    _assert_rows_pass(gradcheck.check_softmax(np.random.default_rng(13)), ["logits"])


# ------------------------------------------------------------ the whole model
def _model_row_names(cell, opts, embed, layers):
    model = make_model(cell, opts, embed=embed, layers=layers)
    names = list(model.params)
    for l in range(1, layers + 1):
        names += [f"L{l}.a0", f"L{l}.c0"] if cell == "lstm" else [f"L{l}.a0"]
    return names


@pytest.mark.parametrize("cell, opts", VARIANT_PARAMS)
def test_stacked_model_gradients(cell, opts):
    """Embedding -> 2 layers -> softmax: every parameter and every layer's initial state."""
    # Seed 3: see test_gradcheck_has_no_false_alarms for seeds where the checker itself errs.
    rows = gradcheck.check_model(cell, opts, np.random.default_rng(3))
    _assert_rows_pass(rows, _model_row_names(cell, opts, embed=4, layers=2))


@pytest.mark.parametrize("cell, opts", VARIANT_PARAMS)
def test_one_hot_model_gradients(cell, opts):
    """--embed 0: true one-hot inputs, one layer (no E among the parameters)."""
    rows = gradcheck.check_model(cell, opts, np.random.default_rng(15), embed=0, layers=1)
    names = _model_row_names(cell, opts, embed=0, layers=1)
    assert "E" not in names
    _assert_rows_pass(rows, names)


@pytest.mark.parametrize("cell, opts", VARIANT_PARAMS)
def test_tied_model_gradients(cell, opts):
    """--tie-weights: W_y = E, one array used as the embedding and as the output layer; its
    gradient (the sum of both uses') against the numerical gradient of the loss."""
    rows = gradcheck.check_model(cell, opts, np.random.default_rng(17), embed=5, hidden=5,
                                 tie_weights=True)
    names = [n for n in _model_row_names(cell, opts, embed=5, layers=2) if n != "W_y"]
    _assert_rows_pass(rows, names)


@pytest.mark.parametrize("use", ["input", "output"])
def test_tied_check_catches_a_missing_use(monkeypatch, use):
    """E's gradient with only one of its two uses (``use``, the one kept): the check reports
    E, and only E."""
    real = Model.backward

    def wrong(self, cache):
        grads, dstate = real(self, cache)
        (enc_cache, hf), dlogits = cache
        output_part = dlogits.T @ hf          # what E gets as W_y
        grads["E"] = grads["E"] - output_part if use == "input" else output_part
        return grads, dstate
    monkeypatch.setattr(Model, "backward", wrong)
    rows = dict(gradcheck.check_model("lstm", {}, np.random.default_rng(17), embed=5,
                                      hidden=5, tie_weights=True))
    assert rows["E"] > 1e-3
    assert all(err < TOLERANCE for name, err in rows.items() if name != "E")


@pytest.mark.parametrize("opts", [{}, {"input_dropout": 0.3}], ids=["layers", "and-input"])
def test_model_gradients_through_dropout(opts):
    """With dropout on, the same seeded mask in every evaluation makes the loss a plain
    function of the parameters, so backward through the masks can be checked too (with
    ``input_dropout`` also through the embedding's mask: E's gradient)."""
    model = make_model("lstm", opts, dropout=0.4, layers=2, hidden=6)
    rng = np.random.default_rng(16)
    X, Y = rng.integers(0, 7, (5, 3)), rng.integers(0, 7, (5, 3))
    state = random_state(model, 3, rng)
    f = lambda: model.loss(X, Y, state, rng=np.random.default_rng(99))[0]  # noqa: E731
    grads, dstate = model.backward(model.loss(X, Y, state, rng=np.random.default_rng(99))[3])
    # the masks are really on: the loss differs from the evaluation loss
    assert abs(f() - model.loss(X, Y, state)[0]) > 1e-3
    for k, w in model.params.items():
        assert rel_error(grads[k], numerical_grad(f, w)) < TOLERANCE, k
    for s, ds in zip(flat_state(state), flat_state(dstate)):
        assert rel_error(ds, numerical_grad(f, s)) < TOLERANCE


# --------------------------------------------------- the check can fail at all
def test_rel_error_against_hand_values():
    a = np.array([[1.0, -2.0], [0.5, 4.0]])
    assert rel_error(a, a.copy()) == 0.0
    # |a - 1.001 a| / (|a| + 1.001 |a|) = 0.001 / 2.001 for every element
    assert rel_error(a, 1.001 * a) == pytest.approx(0.001 / 2.001, rel=1e-5)
    assert rel_error(a, 1.001 * a) > TOLERANCE
    # a zero gradient element is judged against FLOOR times the array's scale (here 4)
    n = np.array([0.0, 4.0])
    assert rel_error(np.array([1e-5, 4.0]), n) == pytest.approx(1e-5 / (gradcheck.FLOOR * 4),
                                                                 rel=1e-3)
    # the sign of one element wrong
    assert rel_error(np.array([1.0, -2.0]), np.array([1.0, 2.0])) == pytest.approx(1.0)


def _scaled_backward(backward, which, factor=1.001):
    """A cell backward with one of its outputs (a weight, dx or the initial state) off by 0.1 %."""
    def wrong(*args, **kwargs):
        dx, dstate, grads = backward(*args, **kwargs)
        if which == "x":
            dx = dx * factor
        elif which in ("a0", "c0"):
            if isinstance(dstate, tuple):
                k = ("a0", "c0").index(which)
                dstate = tuple(d * factor if i == k else d for i, d in enumerate(dstate))
            else:
                dstate = dstate * factor
        else:
            grads = {**grads, which: grads[which] * factor}
        return dx, dstate, grads
    return wrong


@pytest.mark.parametrize("module, cell, opts, which", [
    (rnn, "rnn", {"activation": "tanh"}, "W_aa"),
    (rnn, "rnn", {"activation": "relu"}, "x"),
    (gru, "gru", {}, "a0"),
    (gru, "gru", {"simplified": True}, "b"),
    (lstm, "lstm", {}, "c0"),
    (lstm, "lstm", {"peephole": True}, "p"),
])
def test_cell_check_catches_a_wrong_gradient(monkeypatch, module, cell, opts, which):
    monkeypatch.setattr(module, "backward", _scaled_backward(module.backward, which))
    rows = dict(gradcheck.check_cell(cell, opts, np.random.default_rng(11)))
    assert rows[which] > TOLERANCE
    # 0.1 % off is a relative error of about 0.001 / 2.001 where the gradient is not tiny
    assert rows[which] > 1e-4
    # and only the corrupted array is reported
    assert all(err < TOLERANCE for name, err in rows.items() if name != which)


def test_embedding_check_catches_the_lost_repeated_ids(monkeypatch):
    """``dE[ids] += dx`` is the classic bug: a repeated id keeps only one of its updates."""
    def buffered(ids, dx, V):
        dE = np.zeros((V, dx.shape[-1]))
        dE[ids.reshape(-1)] += dx.reshape(-1, dx.shape[-1])
        return dE
    monkeypatch.setattr(gradcheck, "embed_backward", buffered)
    assert gradcheck.check_embedding(np.random.default_rng(12))[0][1] > 0.1


def test_softmax_check_catches_a_missing_batch_average(monkeypatch):
    real = layers.softmax_xent

    def wrong(logits, y, m):
        L, nll, d = real(logits, y, m)
        return L, nll, d * m  # forgot the 1/m
    monkeypatch.setattr(gradcheck, "softmax_xent", wrong)
    assert gradcheck.check_softmax(np.random.default_rng(13))[0][1] > 0.1


@pytest.mark.parametrize("which", ["L1.W_aa", "L2.c0"])
def test_model_check_catches_a_wrong_gradient(monkeypatch, which):
    real = Model.backward

    def wrong(self, cache):
        grads, dstate = real(self, cache)
        if which == "L2.c0":
            dstate[1] = (dstate[1][0], dstate[1][1] * 1.001)
        else:
            grads[which] = grads[which] * 1.001
        return grads, dstate
    monkeypatch.setattr(Model, "backward", wrong)
    rows = dict(gradcheck.check_model("lstm", {}, np.random.default_rng(3)))
    assert rows[which] > TOLERANCE
    assert all(err < TOLERANCE for name, err in rows.items() if name != which)


def test_run_all_reports_every_check_and_all_pass():
    """What ``charlm gradcheck`` prints: 6 cells, embedding, softmax, 6 models, one-hot model,
    tied model."""
    results = list(gradcheck.run_all(seed=0))
    components = {r.component for r in results}
    assert len(components) == 6 + 1 + 1 + 6 + 1 + 1
    failed = [(r.component, r.param, r.max_rel_error) for r in results if not r.passed]
    assert not failed
    assert all(r.passed == (r.max_rel_error < TOLERANCE) for r in results)


# ----------------------------------------------------- clipping is not in the loss
def test_loss_gradients_are_unclipped_even_when_huge():
    """A model whose gradient norm is far above any clipping threshold: Model.loss/backward
    still give exactly the numerical gradient (clipping is a separate training step), and a
    clipped copy of the same gradients would fail the same check."""
    model = make_model("rnn", {"activation": "tanh"}, seed=1)
    model.params["W_y"] *= 30.0  # large logits -> large gradients everywhere below
    rng = np.random.default_rng(2)
    X, Y = rng.integers(0, 7, (6, 2)), rng.integers(0, 7, (6, 2))
    state = random_state(model, 2, rng)
    f = lambda: model.loss(X, Y, state)[0]  # noqa: E731
    grads, _ = model.backward(model.loss(X, Y, state)[3])
    norm = optim.global_norm(grads)
    assert norm > 50.0
    numeric = {k: numerical_grad(f, w) for k, w in model.params.items()}
    for k in model.params:
        assert rel_error(grads[k], numeric[k]) < TOLERANCE, k
    # the global norm is the norm of the numerical gradient too
    assert norm == pytest.approx(math.sqrt(sum(float((g ** 2).sum()) for g in numeric.values())),
                                 rel=1e-7)
    for max_value, mode in [(5.0, "norm"), (1.0, "value")]:
        clipped = {k: g.copy() for k, g in grads.items()}
        optim.clip_gradients(clipped, max_value, mode)
        assert max(rel_error(clipped[k], numeric[k]) for k in grads) > 1e-2


# ------------------------------------------- the checker must not cry wolf either
@pytest.mark.parametrize("cell, opts, seed, cause", [
    ("rnn", {"activation": "relu"}, 14, "round-off"),
    ("rnn", {"activation": "relu"}, 20, "kink"),
    ("lstm", {"peephole": True}, 42, "round-off"),
], ids=["rnn-relu-seed14-roundoff", "rnn-relu-seed20-kink", "lstm-peephole-seed42-roundoff"])
def test_gradcheck_has_no_false_alarms(cell, opts, seed, cause):
    """check_model on a correct backward pass must pass for any seed, not only the default.

    KNOWN BUG (gradcheck.py): for some seeds it reports errors over TOLERANCE although the
    analytic gradient is right, as this test first shows another way:

    - "round-off": an element whose true gradient is 0 gets a numerical value of ~1e-12
      (round-off of f / h); rel_error judges it against FLOOR * max|n|, and when the array's
      gradients are small (E: ~1e-2) that floor is ~1e-6, so 1e-12 reads as 1e-6.
    - "kink": for relu, RELU_STEP = 1e-4 still moves a pre-activation across 0.
    """
    # Rebuild exactly what check_model draws from this seed (its defaults: V 7, hidden 5, ...).
    rng = np.random.default_rng(seed)
    cfg = ModelConfig(cell=cell, layers=2, hidden=5, embed=4, dropout=0.0, dtype="float64",
                      **opts)
    model = Model.create(cfg, gradcheck.tiny_vocab(7), rng)
    X, Y = rng.integers(0, 7, size=(4, 2)), rng.integers(0, 7, size=(4, 2))
    state = [tuple(rng.standard_normal((2, 5)) for _ in s) if isinstance(s, tuple)
             else rng.standard_normal((2, 5)) for s in model.zero_state(2)]
    f = lambda: model.loss(X, Y, state)[0]  # noqa: E731
    grads, _ = model.backward(model.loss(X, Y, state)[3])
    # The analytic gradient is right: the difference to a numerical gradient is absolute
    # round-off (< 1e-9 with h = 1e-5, which crosses no kink here), nowhere a real error.
    for k, w in model.params.items():
        np.testing.assert_allclose(grads[k], numerical_grad(f, w, 1e-5), rtol=1e-4, atol=1e-9)
    rows = gradcheck.check_model(cell, opts, np.random.default_rng(seed))
    bad = {name: err for name, err in rows if not err < TOLERANCE}
    assert not bad, f"false alarm ({cause}) from a correct backward pass: {bad}"
