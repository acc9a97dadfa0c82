"""The masked, bidirectional layer stack (charlm.encoder) through padded batches.

- float64 gradient checks of a whole tagger (embedding, 1 or 2 BRNN layers of every cell
  variant, per-step softmax) over a right-padded batch of sentences of different lengths;
- padding invariance: a sentence's outputs, loss and gradients alone equal its share inside a
  random padded batch, to float64 round-off;
- where PyTorch is installed: outputs and gradients equal to torch.nn.RNN / torch.nn.LSTM
  (bidirectional=True) over pack_padded_sequence, and for the course GRU and the peephole LSTM
  to those equations in torch autograd, run on each sentence alone and reversed.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import VARIANT_PARAMS

from charlm.nn import encoder
from charlm.nn.model import Model, ModelConfig
from charlm.tasks.sentences import epoch_batches, pad
from charlm.tasks.tag import tag_loss
from charlm.use.gradcheck import RELU_STEP, STEP, TOLERANCE, numerical_grad, rel_error, tiny_vocab

LABELS = ["O", "B-PER", "I-PER"]


def tagger(cell, opts, layers=2, bidirectional=True, hidden=2, embed=2, V=5, seed=0):
    cfg = ModelConfig(cell=cell, layers=layers, hidden=hidden, embed=embed, dropout=0.0,
                      dtype="float64", task="tag", bidirectional=bidirectional, **opts)
    return Model.create(cfg, tiny_vocab(V), np.random.default_rng(seed), LABELS)


def random_batch(rng, lengths, V=5, K=3, T=None):
    seqs = [rng.integers(0, V, size=n) for n in lengths]
    labs = [rng.integers(0, K, size=n) for n in lengths]
    X, L = pad(seqs)
    Y, _ = pad(labs)
    if T is not None and T > X.shape[0]:     # extra padding rows
        X = np.vstack([X, np.zeros((T - X.shape[0], X.shape[1]), X.dtype)])
        Y = np.vstack([Y, np.zeros((T - Y.shape[0], Y.shape[1]), Y.dtype)])
    return X, Y, L, seqs, labs


@pytest.mark.parametrize("layers,bidir", [(1, True), (2, True), (2, False)],
                         ids=["1xBRNN", "2xBRNN", "2xRNN-masked"])
@pytest.mark.parametrize("cell,opts", VARIANT_PARAMS)
def test_gradients_through_a_padded_batch(cell, opts, layers, bidir):
    model = tagger(cell, opts, layers, bidir)
    rng = np.random.default_rng(1)
    X, Y, lengths, _, _ = random_batch(rng, [3, 1, 2], T=4)
    f = lambda: tag_loss(model, X, Y, lengths)[0]  # noqa: E731
    grads, _ = model.backward(tag_loss(model, X, Y, lengths)[3])
    assert set(grads) == set(model.params)
    relu = opts.get("activation") == "relu"
    h = RELU_STEP if relu else STEP
    for k, w in model.params.items():
        err = rel_error(grads[k], numerical_grad(f, w, h, relu))
        assert err < TOLERANCE, (k, err)


def per_sentence(model, X, Y, lengths):
    """Logits, summed NLL and summed gradients of each sentence run alone (m = 1)."""
    out = []
    for i, n in enumerate(lengths):
        Xi, Yi, li = X[:n, i:i + 1], Y[:n, i:i + 1], lengths[i:i + 1]
        logits, _, _ = model.forward(Xi, None, None, li)
        L, nll, _, cache = tag_loss(model, Xi, Yi, li)
        grads, _ = model.backward(cache)
        out.append((logits, nll, grads))
    return out


@pytest.mark.parametrize("cell,opts", VARIANT_PARAMS)
@pytest.mark.parametrize("seed", [0, 1])
def test_padding_changes_nothing(cell, opts, seed):
    rng = np.random.default_rng(seed)
    model = tagger(cell, opts, layers=2, bidirectional=True, hidden=4, seed=seed)
    lengths = list(rng.integers(1, 7, size=5))
    X, Y, L, _, _ = random_batch(rng, lengths, T=max(lengths) + 2)
    m = X.shape[1]
    logits, _, _ = model.forward(X, None, None, L)
    Lb, nll_b, n, cache = tag_loss(model, X, Y, L)
    grads, _ = model.backward(cache)
    alone = per_sentence(model, X, Y, L)
    K = len(LABELS)
    for i, (lg, nll, _) in enumerate(alone):
        mine = logits.reshape(X.shape[0], m, K)[:L[i], i]
        np.testing.assert_allclose(mine, lg, rtol=1e-12, atol=1e-13)
    assert n == sum(lengths)
    np.testing.assert_allclose(nll_b, sum(a[1] for a in alone), rtol=1e-12)
    np.testing.assert_allclose(Lb, nll_b / m, rtol=1e-12)
    for k in model.params:   # L averages over the batch: m × its gradient = Σ of each alone
        np.testing.assert_allclose(m * grads[k], sum(a[2][k] for a in alone),
                                   rtol=1e-10, atol=1e-12, err_msg=k)


def test_reverse_index_reverses_within_each_length():
    rev = encoder.reverse_index(np.array([3, 1, 4]), 4, 3)
    assert rev[:, 0].tolist() == [2, 1, 0, 3]
    assert rev[:, 1].tolist() == [0, 1, 2, 3]
    assert rev[:, 2].tolist() == [3, 2, 1, 0]
    h = np.arange(12.0).reshape(4, 3, 1)
    np.testing.assert_array_equal(encoder.flip(encoder.flip(h, rev), rev), h)


def test_epoch_batches_are_a_function_of_seed_and_epoch():
    lengths = np.random.default_rng(0).integers(1, 30, size=50)
    a = epoch_batches(lengths, 8, seed=3, epoch=2)
    b = epoch_batches(lengths, 8, seed=3, epoch=2)
    c = epoch_batches(lengths, 8, seed=3, epoch=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    assert sorted(np.concatenate(a).tolist()) == list(range(50))   # each sentence once
    # bucketed: within a batch the lengths are close (a batch spans few distinct lengths)
    spread = np.mean([np.ptp(lengths[g]) for g in a])
    assert spread < np.ptp(lengths) / 3


def test_a_bidirectional_language_model_is_refused():
    from charlm.errors import ConfigError
    with pytest.raises(ConfigError, match="predict"):
        ModelConfig(task="lm", bidirectional=True).validate()


# ----------------------------------------------------------------- PyTorch
def _torch():
    return pytest.importorskip("torch")


def _stack_inputs(rng, lengths, n_x):
    T = max(lengths) + 1
    x = rng.standard_normal((T, len(lengths), n_x))
    for i, n in enumerate(lengths):
        x[n:, i] = rng.standard_normal((T - n, n_x)) * 100   # padding must not matter
    return x


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell,opts", [("rnn", {"activation": "tanh"}),
                                       ("rnn", {"activation": "relu"}), ("lstm", {})],
                         ids=["rnn-tanh", "rnn-relu", "lstm"])
def test_brnn_matches_torch_over_packed_sequences(cell, opts, layers):
    torch = _torch()
    from test_torch_reference import LSTM_ORDER, reorder
    rng = np.random.default_rng(layers)
    n_x, n = 4, 5
    cfg = ModelConfig(cell=cell, layers=layers, hidden=n, embed=n_x, dropout=0.0,
                      dtype="float64", task="tag", bidirectional=True, **opts)
    params = encoder.init_params(cfg, n_x, rng, np.float64)
    lengths = [5, 2, 4, 1]
    x = _stack_inputs(rng, lengths, n_x)
    up = rng.standard_normal((x.shape[0], len(lengths), 2 * n))
    h, _, cache = encoder.forward(params, cfg, x, None, np.array(lengths))
    dx, _, grads = encoder.backward(up.copy(), cache, params, cfg)

    order = LSTM_ORDER if cell == "lstm" else None
    fix = (lambda w: reorder(w, n, order)) if order else (lambda w: w)  # noqa: E731
    net = (torch.nn.LSTM(n_x, n, num_layers=layers, bidirectional=True) if cell == "lstm" else
           torch.nn.RNN(n_x, n, num_layers=layers, bidirectional=True,
                        nonlinearity=opts["activation"])).double()
    with torch.no_grad():
        for l in range(1, layers + 1):
            for rev, suffix in ((False, ""), (True, "_reverse")):
                p = encoder.layer_params(params, l, rev)
                getattr(net, f"weight_ih_l{l - 1}{suffix}").copy_(torch.tensor(fix(p["W_ax"])))
                getattr(net, f"weight_hh_l{l - 1}{suffix}").copy_(torch.tensor(fix(p["W_aa"])))
                getattr(net, f"bias_ih_l{l - 1}{suffix}").copy_(torch.tensor(fix(p["b"])))
                getattr(net, f"bias_hh_l{l - 1}{suffix}").zero_()
    xt = torch.tensor(x, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths),
                                                     enforce_sorted=False)
    out, _ = net(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[0])
    (out * torch.tensor(up)).sum().backward()

    np.testing.assert_allclose(h, out.detach().numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    for l in range(1, layers + 1):
        for rev, suffix in ((False, ""), (True, "_reverse")):
            pre = encoder.prefix(l, rev)
            for mine, theirs in (("W_ax", "weight_ih"), ("W_aa", "weight_hh"), ("b", "bias_ih")):
                g = getattr(net, f"{theirs}_l{l - 1}{suffix}").grad.numpy()
                np.testing.assert_allclose(grads[pre + mine], fix(g), rtol=1e-9, atol=1e-11,
                                           err_msg=pre + mine)


@pytest.mark.parametrize("cell,opts", [("gru", {"simplified": False}),
                                       ("gru", {"simplified": True}),
                                       ("lstm", {"peephole": True})],
                         ids=["gru", "gru-simplified", "lstm-peephole"])
def test_brnn_matches_the_course_equations_in_torch_sentence_by_sentence(cell, opts):
    torch = _torch()
    from test_torch_reference import course_gru, course_lstm
    rng = np.random.default_rng(5)
    n_x, n, layers = 3, 4, 2
    cfg = ModelConfig(cell=cell, layers=layers, hidden=n, embed=n_x, dropout=0.0,
                      dtype="float64", task="tag", bidirectional=True, **opts)
    params = encoder.init_params(cfg, n_x, rng, np.float64)
    lengths = [3, 5, 1]
    x = _stack_inputs(rng, lengths, n_x)
    up = rng.standard_normal((x.shape[0], len(lengths), 2 * n))
    h, _, cache = encoder.forward(params, cfg, x, None, np.array(lengths))
    dx, _, grads = encoder.backward(up.copy(), cache, params, cfg)

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    xt = torch.tensor(x, requires_grad=True)
    zero = torch.zeros(1, n, dtype=torch.float64)

    def run(inp, pre):   # inp (T, 1, n_in) -> (T, 1, n)
        W = [tp[pre + k] for k in ("W_ax", "W_aa", "b")]
        if cell == "gru":
            return course_gru(inp, zero, *W, opts["simplified"])
        return course_lstm(inp, zero, zero, *W, tp[pre + "p"])[0]

    total = 0
    for i, T_i in enumerate(lengths):
        hi = xt[:T_i, i:i + 1]
        for l in range(1, layers + 1):
            fwd = run(hi, encoder.prefix(l))
            bwd = run(hi.flip(0), encoder.prefix(l, True)).flip(0)
            hi = torch.cat([fwd, bwd], dim=2)
        np.testing.assert_allclose(h[:T_i, i:i + 1], hi.detach().numpy(), rtol=1e-9,
                                   atol=1e-11)
        total = total + (hi * torch.tensor(up[:T_i, i:i + 1])).sum()
    np.testing.assert_allclose(h[max(lengths):], 0.0)
    for i, T_i in enumerate(lengths):
        np.testing.assert_array_equal(h[T_i:, i], 0.0)   # padded outputs are zero
    total.backward()
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    for k in params:
        np.testing.assert_allclose(grads[k], tp[k].grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=k)
