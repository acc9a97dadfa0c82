"""The forward-only inference path against the training forward pass.

``cell.infer`` and ``Model.target_log_probs`` compute what ``cell.forward`` and ``Model.loss``
compute, by other code (no cache, halved gate rows in the LSTM, contiguous transposed weights,
the output layer in blocks of rows). Here each is checked against the training path: to
round-off in float64, and to float32 round-off in float32, for every cell and variant.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import VARIANT_PARAMS, flat_state, make_model, random_state

from charlm.nn.cells import CELLS, input_product
from charlm.nn.layers import log_softmax
from charlm.tasks.lm import evaluate
from charlm.use.score import batch_log_probs, score_many

# float64: the two paths differ only in the order of a few roundings; float32: a few ulps of
# values of order one, grown through T steps and two layers.
TOL = {"float64": 1e-12, "float32": 2e-5}


@pytest.mark.parametrize("G", [1, 3, 4])
def test_input_product_with_and_without_its_bias(G):
    """z[k, t] = x<t> W_ax[k]ᵀ + b[k], gate-major, against einsum; b=None gives the product
    alone (what bench/product_bound.py times)."""
    rng = np.random.default_rng(3)
    T, m, n_x, n = 5, 3, 4, 6
    x = rng.standard_normal((T, m, n_x))
    W = rng.standard_normal((G * n, n_x))
    b = rng.standard_normal(G * n)
    want = np.einsum("tmi,gni->gtmn", x, W.reshape(G, n, n_x))
    np.testing.assert_allclose(input_product(x, W, None, G), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(input_product(x, W, b, G), want + b.reshape(G, 1, 1, n),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell,opts", VARIANT_PARAMS)
def test_cell_infer_equals_forward(cell, opts, dtype):
    model = make_model(cell, opts, hidden=9, embed=5, layers=1, dtype=dtype, seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 4, 5)).astype(dtype)
    state = random_state(model, 4, rng)[0]
    before = [s.copy() for s in flat_state([state])]
    params = model.layer_params(1)
    mod = CELLS[cell]
    a_ref, s_ref, _ = mod.forward(x, state, params, **opts)
    a, s = mod.infer(x, state, params, **opts)
    assert a.dtype == a_ref.dtype
    np.testing.assert_allclose(a, a_ref, rtol=TOL[dtype], atol=TOL[dtype])
    for got, want in zip(flat_state([s]), flat_state([s_ref])):
        np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])
    for b, s0 in zip(before, flat_state([state])):   # the caller's state is left alone
        np.testing.assert_array_equal(b, s0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell,opts", VARIANT_PARAMS)
@pytest.mark.parametrize("rows", [0, 5])
def test_target_log_probs_equal_the_training_softmax(cell, opts, dtype, rows):
    model = make_model(cell, opts, V=11, hidden=7, embed=4, layers=2, dtype=dtype, seed=4)
    rng = np.random.default_rng(5)
    T, m = 7, 3                                   # 21 positions: blocks of 5 leave one over
    X = rng.integers(0, 11, (T, m)).astype(np.uint8)
    Y = rng.integers(0, 11, (T, m)).astype(np.uint8)
    state = random_state(model, m, rng)
    logits, s_ref, _ = model.forward(X, state)
    full = log_softmax(logits.astype(np.float64)).reshape(T, m, -1)
    want = np.take_along_axis(full, Y[..., None].astype(np.intp), axis=2)[..., 0]
    got, s = model.target_log_probs(X, Y, state, rows=rows)
    assert got.shape == (T, m) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])
    for g, w in zip(flat_state(s), flat_state(s_ref)):
        np.testing.assert_allclose(g, w, rtol=TOL[dtype], atol=TOL[dtype])
    # the summed NLL is Model.loss's
    _, nll, _, _ = model.loss(X, Y, state)
    assert -got.sum() == pytest.approx(nll, rel=TOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("scale", [1.0, 40.0, 1e4])
def test_target_log_probs_with_and_without_the_max_shift(dtype, scale):
    """Small output weights take the unshifted logsumexp, huge ones (logits of 10^4, where
    exp overflows) the shifted one; both against float64 log_softmax of the same logits."""
    model = make_model("lstm", V=13, hidden=6, embed=3, layers=1, dtype=dtype, seed=9)
    for k in ("W_y", "b_y"):
        model.params[k] *= model.params[k].dtype.type(scale)
    rng = np.random.default_rng(10)
    X = rng.integers(0, 13, (4, 5)).astype(np.uint8)
    Y = rng.integers(0, 13, (4, 5)).astype(np.uint8)
    state = random_state(model, 5, rng)
    logits, _, _ = model.forward(X, state)
    full = log_softmax(logits.astype(np.float64)).reshape(4, 5, -1)
    want = np.take_along_axis(full, Y[..., None].astype(np.intp), axis=2)[..., 0]
    got, _ = model.target_log_probs(X, Y, state)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale)


def test_full_log_probs_equal_the_training_softmax():
    model = make_model("lstm", V=9, dtype="float64", seed=6)
    X = np.random.default_rng(7).integers(0, 9, (5, 2))
    logits, _, _ = model.forward(X, model.zero_state(2))
    got, _ = model.log_probs(X, model.zero_state(2))
    np.testing.assert_allclose(got.reshape(10, 9), log_softmax(logits), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_evaluate_equals_windows_of_model_loss(cell):
    """evaluate's state-carrying windows, recomputed with the training loss."""
    model = make_model(cell, V=8, dtype="float32", seed=8)
    ids = np.random.default_rng(9).integers(0, 8, 203).astype(np.uint8)
    got, n = evaluate(model, ids, m=3, T=10)
    # the same split by hand: <EOS> then the stream, in 3 rows of n targets each, windows of
    # 10 steps with the state carried
    rows = len(ids) // 3
    s = np.concatenate([[0], ids[: rows * 3]]).astype(np.uint8)   # 0 is <EOS>
    inp = np.stack([s[r * rows: r * rows + rows] for r in range(3)], axis=1)
    tgt = np.stack([s[r * rows + 1: r * rows + rows + 1] for r in range(3)], axis=1)
    state, total = model.zero_state(3), 0.0
    for t in range(0, rows, 10):
        _, nll, state, _ = model.loss(inp[t:t + 10], tgt[t:t + 10], state)
        total += nll
    assert n == rows * 3
    assert got == pytest.approx(total / n, rel=1e-6)


def test_score_many_sorts_by_length_and_keeps_the_input_order():
    model = make_model("gru", V=7, seed=10)
    texts = ["abcabcab", "a", "", "cab", "bbbbbbbbbbbbb", "ab", "c"]
    one_by_one = [batch_log_probs(model, [model.vocab.encode(t).astype(np.int64)])[0]
                  for t in texts]
    results = list(score_many(model, texts, batch=2))
    assert [r.text for r in results] == texts
    for r, want in zip(results, one_by_one):
        np.testing.assert_allclose(r.log_probs, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell,opts", VARIANT_PARAMS)
def test_priming_in_one_pass_gives_the_stepped_state(cell, opts):
    from charlm.nn.model import Stepper
    from charlm.nn.sampling import prime_state
    model = make_model(cell, opts, V=9, dtype="float64", seed=11)
    prime = np.array([2, 5, 3, 3, 8, 4])
    step = Stepper(model)
    state, x = prime_state(step, prime)
    # by hand: <EOS>, then every prime token but the last, one step at a time
    want = model.zero_state(1)
    for tok in [0, *prime[:-1]]:
        _, want = step(np.array([tok]), want)
    assert x == prime[-1]
    for g, w in zip(flat_state(state), flat_state(want)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    assert prime_state(step, np.zeros(0, int))[1] == 0     # no prime: <EOS> is the input


# ------------------------------------------ the encoder's forward-only path (tag, classify)
# ``encoder.infer`` and everything on it (tag_log_probs, the classifier's predict_proba, the
# character words, the frozen LMs' features) against the training forward pass without rng,
# which keeps caches and runs each cell's ``forward``: padded batches of different lengths,
# one and two directions, models whose config has dropout (the inference path must not apply
# it).
from charlm.nn import charwords as wordfeat  # noqa: E402
from charlm.nn import encoder  # noqa: E402
from charlm.nn.model import Model, ModelConfig  # noqa: E402
from charlm.tasks import classify as C  # noqa: E402
from charlm.tasks.sentences import pad  # noqa: E402
from charlm.tasks.tag import encode_tokens, tag_log_probs  # noqa: E402
from charlm.text.vocab import Vocab  # noqa: E402

LENGTHS = [5, 1, 3, 5, 2]
SENTS = [["Harry", "Potter", "met", "Ron"], ["a"], ["Teddy", "Roosevelt", "met", "a", "spell"],
         ["spell", "Potter"], ["Albus", "Dumbledore", "said"]]
WORDS = ["Harry", "met", "a", "spell", "Potter"]
TAGS = ["O", "B-PER", "I-PER"]


def encoder_config(cell, opts, bidirectional, dtype, layers=2):
    return ModelConfig(cell=cell, layers=layers, hidden=6, embed=4, dropout=0.3, dtype=dtype,
                       task="tag", bidirectional=bidirectional, **opts)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("lengths", [LENGTHS, None], ids=["padded", "full"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell,opts", VARIANT_PARAMS)
def test_encoder_infer_equals_forward(cell, opts, bidirectional, lengths, dtype):
    cfg = encoder_config(cell, opts, bidirectional, dtype)
    rng = np.random.default_rng(12)
    params = encoder.init_params(cfg, 4, rng, np.dtype(dtype).type)
    T, m = 6, len(LENGTHS)                      # one padding row more than the longest
    x = rng.standard_normal((T, m, 4)).astype(dtype)
    state = [tuple(rng.standard_normal(a.shape).astype(dtype) for a in s)
             if isinstance(s, tuple) else rng.standard_normal(s.shape).astype(dtype)
             for s in encoder.zero_state(cfg, m, np.dtype(dtype).type)]
    x0, s0 = x.copy(), [a.copy() for a in flat_state(state)]
    L = None if lengths is None else np.array(lengths)
    want, s_want, _ = encoder.forward(params, cfg, x, state, L)
    got, s_got = encoder.infer(params, cfg, x, state, L)
    assert got.shape == want.shape == (T, m, 12 if bidirectional else 6)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])
    if L is not None:                                        # padding: exactly zero
        assert not got[np.arange(T)[:, None] >= L[None, :]].any()
    for g, w in zip(flat_state(s_got), flat_state(s_want)):
        np.testing.assert_allclose(g, w, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_array_equal(x, x0)                     # inputs left alone
    for a, b in zip(flat_state(state), s0):
        np.testing.assert_array_equal(a, b)


def char_lm(cell, hidden, dtype, seed):
    """A small untrained character LM over the characters of SENTS (and the space)."""
    vocab = Vocab.build([" ".join(s) for s in SENTS], "char", unk_token=None)
    cfg = ModelConfig(cell=cell, layers=2, hidden=hidden, embed=3, dropout=0.2, dtype=dtype)
    return Model.create(cfg, vocab, np.random.default_rng(seed))


def feature_tagger(cell, bidirectional, chars, lms, dtype):
    lm_list = [(char_lm(cell, 4, dtype, 20), False), (char_lm(cell, 3, dtype, 21), True)] \
        if lms else []
    feats = wordfeat.WordFeatures(
        wordfeat.WordFeatures.build([WORDS], 2).chars if chars else None, lm_list) \
        if chars or lms else None
    cfg = ModelConfig(cell=cell, layers=2, hidden=5, embed=3, dropout=0.3, dtype=dtype,
                      task="tag", bidirectional=bidirectional,
                      char_embed=3 if chars else 0, char_hidden=2 if chars else 0,
                      lm_features=feats.lm_size if feats is not None else 0)
    vocab = Vocab(["<EOS>", "<UNK>", *WORDS], "word", unk_token=None)
    return Model.create(cfg, vocab, np.random.default_rng(13), TAGS, feats)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("chars,lms", [(False, False), (True, False), (False, True),
                                       (True, True)],
                         ids=["words", "chars", "lm", "chars+lm"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_tag_log_probs_equal_the_training_forward(cell, bidirectional, chars, lms, dtype):
    model = feature_tagger(cell, bidirectional, chars, lms, dtype)
    X, lengths = pad([encode_tokens(model.vocab, s) for s in SENTS])
    words = model.features.batch(SENTS) if model.features is not None else None
    logits, _, _ = model.forward(X, None, None, lengths, words)     # training pass, no rng
    T, m = X.shape
    want = log_softmax(logits.astype(np.float64)).reshape(T, m, -1)
    got = tag_log_probs(model, X, lengths, words)
    assert got.shape == want.shape and got.dtype == logits.dtype
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])
    if chars:      # the character words alone, both ways
        r_ref, _ = wordfeat.char_forward(model.params, model.config, words.chars,
                                         words.char_lengths)
        r, cache = wordfeat.char_forward(model.params, model.config, words.chars,
                                         words.char_lengths, train=False)
        assert cache is None
        np.testing.assert_allclose(r, r_ref, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward-lm", "backward-lm"])
@pytest.mark.parametrize("cell,opts", VARIANT_PARAMS)
def test_lm_features_equal_the_training_forward(cell, opts, reverse, dtype):
    """lm_word_states reads a padded batch of texts on Model.infer (no lengths: the padding
    comes after every span it gathers); here the states come from the masked training pass,
    Model.encode with the texts' lengths, gathered at the same spans by hand."""
    vocab = Vocab.build([" ".join(s) for s in SENTS], "char", unk_token=None)
    cfg = ModelConfig(cell=cell, layers=2, hidden=4, embed=3, dropout=0.2, dtype=dtype, **opts)
    lm = Model.create(cfg, vocab, np.random.default_rng(22))
    got = wordfeat.lm_word_states(lm, reverse, SENTS)
    texts = [" ".join(s)[::-1] if reverse else " ".join(s) for s in SENTS]
    X, lengths = pad([np.r_[0, vocab.encode(t)].astype(np.int64) for t in texts])  # <EOS> first
    h, _, _ = lm.encode(X, None, lengths)
    for j, (s, g) in enumerate(zip(SENTS, got)):
        ends, pos = [], 0
        for w in s:                       # the character after which each word is read
            ends.append(pos + len(w))     # forward: h<i+1> after text char i = the word's last
            pos += len(w) + 1
        starts = [e - len(w) for e, w in zip(ends, s)]
        rows = [len(texts[j]) - st for st in starts] if reverse else ends
        assert g.shape == (len(s), 4) and g.dtype == np.float32
        np.testing.assert_allclose(g, h[rows, j].astype(np.float32), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("pool", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell,opts", VARIANT_PARAMS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_classifier_infer_equals_the_training_forward(cell, opts, bidirectional, pool, dtype):
    cfg = ModelConfig(cell=cell, layers=2, hidden=5, embed=3, dropout=0.3, dtype=dtype,
                      task="classify", bidirectional=bidirectional, pool=pool, **opts)
    vocab = Vocab(["<EOS>", "<UNK>", *WORDS], "word", unk_token=None)
    model = Model.create(cfg, vocab, np.random.default_rng(14), ["neg", "pos", "mixed"])
    rng = np.random.default_rng(15)
    seqs = [rng.integers(0, len(vocab), n) for n in LENGTHS]
    X, lengths = pad(seqs)
    want, _ = C.forward(model, X, lengths)
    got = C.infer(model, X, lengths)
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])
    # predict_proba (sorted into batches of 2) against the softmax of the training pass
    P = C.predict_proba(model, seqs, m=2)
    np.testing.assert_allclose(P, np.exp(log_softmax(want.astype(np.float64))),
                               rtol=TOL[dtype], atol=TOL[dtype])
