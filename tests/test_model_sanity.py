"""Sanity of the model and its training step: initial loss, overfitting, dropout, dtypes,
step-by-step evaluation, optimizers and clipping, each against a value computed another way."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from conftest import VARIANT_PARAMS, flat_state, make_model, random_state

from charlm.errors import ConfigError, ModelFileError
from charlm.nn import optim
from charlm.nn.layers import dropout_mask, log_softmax
from charlm.nn.model import Model, ModelConfig
from charlm.text.vocab import Vocab, split_sequences
from charlm.training import checkpoint

TEXT = ("The quick brown fox jumps over the lazy dog.\n"
        "Pack my box with five dozen liquor jugs!\n"
        "How vexingly quick daft zebras jump; sphinx of black quartz, judge my vow?\n")


def char_vocab(text=TEXT):
    return Vocab.build(split_sequences(text), "char")


# --------------------------------------------------------------- initial loss
@pytest.mark.parametrize("cell, opts, embed", [
    ("lstm", {}, 64), ("lstm", {}, 0), ("gru", {}, 32), ("gru", {"simplified": True}, 0),
    ("rnn", {"activation": "tanh"}, 32), ("rnn", {"activation": "relu"}, 0),
    ("lstm", {"peephole": True}, 16),
], ids=["lstm", "lstm-onehot", "gru", "gru-simplified-onehot", "rnn-tanh", "rnn-relu-onehot",
        "lstm-peephole"])
def test_initial_loss_per_token_is_about_ln_V(cell, opts, embed):
    """A fresh model predicts nearly uniformly, so its loss per token is about ln V.

    Tolerance 0.1 nats, from the initialisation: W_y and b_y are U(±1/sqrt(H)), variance
    1/(3H) per weight, and |a| < 1, so every logit has variance at most (H + 1)/(3H) ≈ 1/3;
    the expected excess of the cross-entropy over ln V is about half the logit variance, i.e.
    at most ~0.17 in the worst case of saturated hidden units and, with the small activations
    of a fresh recurrent layer (|a| ~ 0.1, variance of a logit ~ 0.01), ~0.01 in practice.
    Chance correlations between the random biases and frequent targets move it either way by
    a similar amount. 0.1 leaves room for that and still fails for any output layer scaled so
    that logits are O(1) (e.g. N(0, 1) weights: variance ~ H E[a²] ~ 1, excess ~ 0.5).
    """
    vocab = char_vocab(TEXT * 3)
    cfg = ModelConfig(cell=cell, layers=2, hidden=128, embed=embed, dropout=0.0, **opts)
    model = Model.create(cfg, vocab, np.random.default_rng(0))
    ids = vocab.encode_sequences(split_sequences(TEXT * 3))
    n = (len(ids) - 1) // 4
    X = ids[: 4 * n].reshape(4, n).T  # 4 rows of consecutive text, time-major
    Y = ids[1: 4 * n + 1].reshape(4, n).T
    L, nll, _, _ = model.loss(X, Y, model.zero_state(4))
    assert nll / X.size == pytest.approx(L / n, rel=1e-6)  # L is summed over T, mean over m
    assert abs(nll / X.size - math.log(len(vocab))) < 0.1


# ----------------------------------------------------------------- overfitting
def test_small_model_overfits_a_short_text():
    text = "hello world " * 6
    vocab = Vocab.build([text], "char")
    ids = vocab.encode(text)
    X, Y = ids[:-1, None], ids[1:, None]  # (T, 1)
    cfg = ModelConfig(cell="lstm", layers=1, hidden=32, embed=8, dropout=0.0)
    model = Model.create(cfg, vocab, np.random.default_rng(0))
    opt = optim.Adam(1e-2)
    first = None
    for _ in range(150):
        L, nll, _, cache = model.loss(X, Y, model.zero_state(1))
        first = nll / X.size if first is None else first
        grads, _ = model.backward(cache)
        optim.clip_gradients(grads, 5.0)
        opt.update(model.params, grads)
    final = model.loss(X, Y, model.zero_state(1))[1] / X.size
    assert first == pytest.approx(math.log(len(vocab)), abs=0.1)
    assert final < 0.05
    # and greedy decoding from "h" now reproduces the text
    state, tok, out = model.zero_state(1), ids[:1], []
    for _ in range(len(text) - 1):
        logits, state = model.step(tok, state)
        tok = logits.argmax(axis=1)
        out.append(int(tok[0]))
    assert vocab.decode(ids[:1]) + vocab.decode(out) == text


# --------------------------------------------------------------------- dropout
def test_dropout_is_identity_at_evaluation():
    model = make_model("lstm", {}, dropout=0.5, layers=2, hidden=6, V=9)
    rng = np.random.default_rng(1)
    X = rng.integers(0, 9, (5, 3))
    state = random_state(model, 3, rng)
    a = model.forward(X, state)[0].copy()
    b = model.forward(X, state)[0].copy()
    assert np.array_equal(a, b)
    cfg0 = ModelConfig(**{**model.config.to_json(), "dropout": 0.0})
    no_dropout = Model(cfg0, model.vocab, model.params)
    assert np.array_equal(a, no_dropout.forward(X, state)[0])
    # with an rng it is on, and it differs
    assert not np.allclose(a, model.forward(X, state, rng=np.random.default_rng(2))[0])


def test_dropout_at_training_is_inverted_dropout_on_every_layer_output():
    """The training forward equals the same network computed by hand with the same masks."""
    p = 0.3
    model = make_model("gru", {}, dropout=p, layers=2, hidden=7, V=9)
    rng = np.random.default_rng(3)
    X = rng.integers(0, 9, (6, 4))
    state = random_state(model, 4, rng)
    logits = model.forward(X, state, rng=np.random.default_rng(5))[0]
    # by hand: cell, then mask, for each layer, masks drawn in layer order from the same seed
    mask_rng = np.random.default_rng(5)
    h = model.params["E"][X]
    for l in (1, 2):
        h, _, _ = model.cell.forward(h, state[l - 1], model.layer_params(l))
        h = h * dropout_mask(h.shape, p, mask_rng, np.float64)
    expect = h.reshape(24, -1) @ model.params["W_y"].T + model.params["b_y"]
    np.testing.assert_allclose(logits, expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_mask_statistics(p):
    N = 400 * 500
    mask = dropout_mask((400, 500), p, np.random.default_rng(4), np.float32)
    assert mask.dtype == np.float32
    zeros = (mask == 0).mean()
    # the kept units are scaled by exactly 1 / (1 - p), so that E[mask] = 1
    assert np.allclose(mask[mask != 0], np.float32(1.0 / (1.0 - p)))
    # binomial: the fraction of zeros is p within 5 standard deviations
    assert abs(zeros - p) < 5 * math.sqrt(p * (1 - p) / N)
    # the mean of the mask is 1 within 5 standard deviations (sd of one unit: sqrt(p/(1-p)))
    assert abs(mask.mean(dtype=np.float64) - 1.0) < 5 * math.sqrt(p / (1 - p) / N)


# ---------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("cell, opts", VARIANT_PARAMS)
def test_float32_and_float64_models_agree(cell, opts):
    m64 = make_model(cell, opts, dtype="float64", hidden=16, embed=8, V=12, seed=6)
    cfg32 = ModelConfig(**{**m64.config.to_json(), "dtype": "float32"})
    m32 = Model(cfg32, m64.vocab, {k: v.astype(np.float32) for k, v in m64.params.items()})
    rng = np.random.default_rng(7)
    X, Y = rng.integers(0, 12, (20, 4)), rng.integers(0, 12, (20, 4))
    L64, _, _, c64 = m64.loss(X, Y, m64.zero_state(4))
    L32, _, _, c32 = m32.loss(X, Y, m32.zero_state(4))
    g64, _ = m64.backward(c64)
    g32, _ = m32.backward(c32)
    assert L32 == pytest.approx(L64, rel=1e-5)
    for k in g64:
        assert g32[k].dtype == np.float32, k
        scale = np.abs(g64[k]).max()
        np.testing.assert_allclose(g32[k], g64[k], atol=1e-4 * scale, rtol=0, err_msg=k)
    assert all(s.dtype == np.float32 for s in flat_state(m32.forward(X, m32.zero_state(4))[1]))


# --------------------------------------------------- step-by-step evaluation
@pytest.mark.parametrize("embed", [4, 0], ids=["embed", "one-hot"])
@pytest.mark.parametrize("cell, opts", VARIANT_PARAMS)
def test_step_by_step_equals_forward(cell, opts, embed):
    model = make_model(cell, opts, embed=embed, layers=2, hidden=6, V=9, seed=8)
    rng = np.random.default_rng(9)
    T, m = 7, 3
    X = rng.integers(0, 9, (T, m)).astype(np.uint8)
    state0 = random_state(model, m, rng)
    logits, final, _ = model.forward(X, state0)
    logits = logits.reshape(T, m, -1)
    state = state0
    for t in range(T):
        step_logits, state = model.step(X[t], state)
        np.testing.assert_allclose(step_logits, logits[t], rtol=1e-10, atol=1e-12,
                                   err_msg=f"t={t}")
    for s, f in zip(flat_state(state), flat_state(final)):
        np.testing.assert_allclose(s, f, rtol=1e-10, atol=1e-12)
    # log_probs: a normalised log-softmax of the same logits
    lp, _ = model.log_probs(X, state0)
    np.testing.assert_allclose(np.exp(lp).sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(lp, logits - np.log(np.exp(logits).sum(-1, keepdims=True)),
                               rtol=1e-10, atol=1e-12)


def test_log_softmax_is_stable_for_huge_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [-5e3, -5e3, -5e3]])
    lp = log_softmax(z)
    assert np.all(np.isfinite(lp))
    np.testing.assert_allclose(lp[0], [0.0, -1000.0, -2000.0], atol=1e-9)
    np.testing.assert_allclose(lp[1], [-math.log(3)] * 3, rtol=1e-12)


# -------------------------------------------------------------------- optimizers
def _two_steps(opt, w0, g1, g2, lr2=None):
    params = {"w": w0.copy()}
    opt.update(params, {"w": g1.copy()})
    after1 = params["w"].copy()
    if lr2 is not None:
        opt.lr = lr2
    opt.update(params, {"w": g2.copy()})
    return after1, params["w"]


W0 = np.array([[0.5, -1.0, 2.0], [0.0, 3.0, -0.25]])
G1 = np.array([[0.1, -0.2, 0.3], [1.0, -2.0, 0.0]])
G2 = np.array([[-0.4, 0.5, 0.3], [0.2, 0.0, -1.5]])


def test_sgd_plain_and_momentum_by_hand():
    a1, a2 = _two_steps(optim.SGD(0.1), W0, G1, G2, lr2=0.05)
    np.testing.assert_allclose(a1, W0 - 0.1 * G1, rtol=1e-15)
    np.testing.assert_allclose(a2, W0 - 0.1 * G1 - 0.05 * G2, rtol=1e-15)
    mu = 0.9
    a1, a2 = _two_steps(optim.SGD(0.1, momentum=mu), W0, G1, G2)
    v1 = G1
    v2 = mu * v1 + G2
    np.testing.assert_allclose(a1, W0 - 0.1 * v1, rtol=1e-15)
    np.testing.assert_allclose(a2, W0 - 0.1 * v1 - 0.1 * v2, rtol=1e-14)


def test_adagrad_by_hand():
    eps = 1e-8
    a1, a2 = _two_steps(optim.Adagrad(0.5, eps=eps), W0, G1, G2)
    s1 = G1 ** 2
    s2 = s1 + G2 ** 2
    w1 = W0 - 0.5 * G1 / np.sqrt(s1 + eps)
    np.testing.assert_allclose(a1, w1, rtol=1e-14)
    np.testing.assert_allclose(a2, w1 - 0.5 * G2 / np.sqrt(s2 + eps), rtol=1e-14)


def test_adam_by_hand():
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    opt = optim.Adam(lr, b1, b2, eps)
    a1, a2 = _two_steps(opt, W0, G1, G2)
    w, m, v, out = W0.copy(), 0.0, 0.0, []
    for t, g in enumerate((G1, G2), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(w)
    np.testing.assert_allclose(a1, out[0], rtol=1e-12)
    np.testing.assert_allclose(a2, out[1], rtol=1e-12)
    assert opt.t == 2
    # the first step of Adam moves every weight with a non-zero gradient by about lr
    moved = np.abs(a1 - W0)[G1 != 0]
    np.testing.assert_allclose(moved, lr, rtol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "sgd-momentum", "adagrad", "adam"])
def test_optimizers_match_torch_optim(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    w0 = rng.standard_normal((4, 3))
    gs = [rng.standard_normal((4, 3)) for _ in range(5)]
    ours, theirs = {
        "sgd": (optim.SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
        "sgd-momentum": (optim.SGD(0.1, momentum=0.9),
                         lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
        # charlm's Adagrad puts eps inside the sqrt (min-char-rnn), torch adds it outside:
        # (the hand-computed test above checks that); with eps 1e-20 both are negligible
        "adagrad": (optim.Adagrad(0.1, eps=1e-20), lambda p: torch.optim.Adagrad(p, lr=0.1,
                                                                                  eps=1e-20)),
        "adam": (optim.Adam(0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    }[name]
    params = {"w": w0.copy()}
    tw = torch.tensor(w0.copy(), requires_grad=True)
    topt = theirs([tw])
    for g in gs:
        ours.update(params, {"w": g.copy()})
        tw.grad = torch.tensor(g)
        topt.step()
        np.testing.assert_allclose(params["w"], tw.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_optimizer_state_is_named_arrays_per_parameter():
    opt = optim.Adam(0.1)
    params = {"a": W0.copy(), "b": np.ones(3)}
    opt.update(params, {"a": G1, "b": np.ones(3)})
    assert sorted(opt.state) == ["m/a", "m/b", "v/a", "v/b"]
    np.testing.assert_allclose(opt.state["m/a"], 0.1 * G1)
    assert set(optim.OPTIMIZERS) == {"sgd", "adagrad", "adam"}
    assert isinstance(optim.make_optimizer("sgd", 0.5, momentum=0.9), optim.SGD)
    assert optim.make_optimizer("sgd", 0.5, momentum=0.9).momentum == 0.9
    with pytest.raises(ConfigError):
        optim.make_optimizer("rmsprop", 0.1)


# ---------------------------------------------------------------------- clipping
def _grads():
    return {"a": np.array([3.0, -4.0]), "b": np.array([[12.0]])}  # global norm 13


def test_clip_by_norm_by_hand():
    g = _grads()
    assert optim.global_norm(g) == 13.0
    assert optim.clip_gradients(g, 6.5, "norm") == 13.0  # the norm before clipping
    np.testing.assert_allclose(g["a"], [1.5, -2.0])
    np.testing.assert_allclose(g["b"], [[6.0]])
    assert optim.global_norm(g) == pytest.approx(6.5)
    # under the threshold: untouched
    g = _grads()
    assert optim.clip_gradients(g, 13.5) == 13.0
    np.testing.assert_array_equal(g["a"], [3.0, -4.0])


def test_clip_by_norm_keeps_the_direction():
    rng = np.random.default_rng(11)
    g = {k: rng.standard_normal(s) * 10 for k, s in [("x", (5, 4)), ("y", (7,))]}
    before = np.concatenate([v.ravel() for v in g.values()])
    optim.clip_gradients(g, 1.0, "norm")
    after = np.concatenate([v.ravel() for v in g.values()])
    assert np.linalg.norm(after) == pytest.approx(1.0)
    np.testing.assert_allclose(after, before / np.linalg.norm(before), rtol=1e-12)


def test_clip_by_value_by_hand():
    g = _grads()
    assert optim.clip_gradients(g, 3.5, "value") == 13.0
    np.testing.assert_array_equal(g["a"], [3.0, -3.5])
    np.testing.assert_array_equal(g["b"], [[3.5]])


def test_clip_off_and_bad_mode():
    g = _grads()
    assert optim.clip_gradients(g, 0.0, "norm") == 13.0
    np.testing.assert_array_equal(g["b"], [[12.0]])
    with pytest.raises(ConfigError):
        optim.clip_gradients(_grads(), 1.0, "elementwise")
    # a non-finite gradient is reported through the returned norm, for the trainer to act on
    assert not math.isfinite(optim.clip_gradients({"a": np.array([np.inf, 1.0])}, 1.0))


# ------------------------------------------------------------------- config
@pytest.mark.parametrize("bad", [
    dict(cell="transformer"), dict(layers=0), dict(hidden=0), dict(embed=-1),
    dict(dropout=1.0), dict(dropout=-0.1), dict(input_dropout=1.0), dict(input_dropout=-0.1),
    dict(activation="gelu", cell="rnn"),
    dict(dtype="float16"), dict(peephole=True, cell="gru"), dict(simplified=True),
    dict(activation="relu"),  # the default cell is the LSTM
])
def test_config_validation_errors(bad):
    with pytest.raises(ConfigError):
        Model.create(ModelConfig(**bad), char_vocab(), np.random.default_rng(0))


@pytest.mark.parametrize("bad, says", [
    (dict(tie_weights=True, embed=64, hidden=512), "--embed must equal --hidden (got --embed 64"),
    (dict(tie_weights=True, embed=0, hidden=8), "--embed must equal --hidden (got --embed 0"),
    (dict(tie_weights=True, embed=8, hidden=8, task="tag"), "labels, not tokens"),
])
def test_tied_weights_config_errors(bad, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        ModelConfig(**bad).validate()


def test_tied_model_has_no_W_y_and_its_file_stores_E_once(tmp_path):
    """W_y = E: one array (no W_y parameter, none in the file); the loaded model gives the
    same logits, and its logits are E a + b_y (E's rows as the output weights)."""
    model = make_model("lstm", {"tie_weights": True}, embed=5, hidden=5, V=7, seed=4)
    untied = make_model("lstm", {}, embed=5, hidden=5, V=7, seed=4)
    assert set(untied.params) - set(model.params) == {"W_y"}
    assert model.n_params() == untied.n_params() - 7 * 5
    assert checkpoint._expected_shapes(model.config, model.vocab) == \
        {k: v.shape for k, v in model.params.items()}
    rng = np.random.default_rng(5)
    X = rng.integers(0, 7, (6, 2))
    state = random_state(model, 2, rng)
    logits, _, (_, hf) = model.forward(X, state)
    np.testing.assert_allclose(logits, hf @ model.params["E"].T + model.params["b_y"],
                               rtol=1e-12)
    checkpoint.save(tmp_path / "t.npz", model)
    with np.load(tmp_path / "t.npz") as z:
        assert sorted(k for k in z.files if k.startswith("param/") and "L" not in k) == \
            ["param/E", "param/b_y"]
    loaded, _, _ = checkpoint.load(tmp_path / "t.npz")
    assert loaded.config.tie_weights
    np.testing.assert_array_equal(loaded.forward(X, state)[0], logits)
    # a tied file without its E is damaged, not silently untied
    with np.load(tmp_path / "t.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "param/E"}
    np.savez(tmp_path / "no_e.npz", **arrays)
    with pytest.raises(ModelFileError, match="lacks parameters E"):
        checkpoint.load(tmp_path / "no_e.npz")


def test_config_json_round_trip_and_parameter_names():
    model = make_model("lstm", {"peephole": True}, embed=4, layers=2, hidden=5, V=7)
    assert ModelConfig.from_json({**model.config.to_json(), "extra": 1}) == model.config
    # names and shapes as the model docstring lists them
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes == {"E": (7, 4), "L1.W_ax": (20, 4), "L1.W_aa": (20, 5), "L1.b": (20,),
                      "L1.p": (15,), "L2.W_ax": (20, 5), "L2.W_aa": (20, 5), "L2.b": (20,),
                      "L2.p": (15,), "W_y": (7, 5), "b_y": (7,)}
    assert model.n_params() == sum(int(np.prod(s)) for s in shapes.values())
