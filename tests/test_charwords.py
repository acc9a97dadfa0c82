"""Character-aware tagging (charlm.wordfeat): each word also read by a BRNN over its
characters, r(w) = [a→<len>, a←<1>], concatenated with its embedding.

- float64 gradient checks of a whole tagger with character words, every cell, through padded
  batches of sentences and of words (the gradient flows through r(w) into C.*);
- a sentence's loss and gradients alone equal its share of a padded batch (the unique words
  of a batch are padded too);
- where PyTorch is installed: r(w) and the character network's gradients equal to
  nn.Embedding -> nn.LSTM / nn.RNN(bidirectional=True) over pack_padded_sequence, its final
  states h_n concatenated;
- the character vocabulary and the C.* parameters round-trip through the model file; an
  unknown word is no longer one <UNK> vector.
"""

from __future__ import annotations

import functools
import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import VARIANT_PARAMS

from charlm.errors import ConfigError
from charlm.nn import charwords as wordfeat
from charlm.nn.model import Model, ModelConfig
from charlm.tasks.sentences import pad
from charlm.tasks.tag import encode_tokens, tag_loss
from charlm.text.vocab import Vocab
from charlm.training import checkpoint
from charlm.use.gradcheck import RELU_STEP, STEP, TOLERANCE, numerical_grad, rel_error

LABELS = ["O", "B-PER", "I-PER"]
SENTS = [["Harry", "Potter", "met", "Ron"], ["a"], ["Teddy", "Roosevelt", "met"],
         ["spell", "Potter"]]
TRAIN_WORDS = ["Harry", "met", "a", "spell", "Potter"]


def char_tagger(cell, opts, hidden=3, char_embed=2, char_hidden=2, seed=0, dtype="float64"):
    cfg = ModelConfig(cell=cell, layers=1, hidden=hidden, embed=3, dropout=0.0, dtype=dtype,
                      task="tag", bidirectional=True, char_embed=char_embed,
                      char_hidden=char_hidden, **opts)
    vocab = Vocab(["<EOS>", "<UNK>", *TRAIN_WORDS], "word", unk_token=None)
    feats = wordfeat.WordFeatures.build([TRAIN_WORDS], char_hidden)
    return Model.create(cfg, vocab, np.random.default_rng(seed), LABELS, feats)


def batch(model, sents, rng):
    X, lengths = pad([encode_tokens(model.vocab, s) for s in sents])
    Y, _ = pad([rng.integers(0, len(LABELS), size=len(s)) for s in sents])
    return X, Y, lengths, model.features.batch(sents)


@pytest.mark.parametrize("cell,opts", VARIANT_PARAMS)
def test_gradients_through_the_character_network(cell, opts):
    model = char_tagger(cell, opts, hidden=2)
    rng = np.random.default_rng(1)
    X, Y, lengths, words = batch(model, [["Harry", "Ron", "met"], ["a"], ["Teddy", "a"]], rng)
    assert words.chars.shape == (5, 5)     # 5 unique words, padded to "Harry", "Teddy"
    f = lambda: tag_loss(model, X, Y, lengths, None, words)[0]  # noqa: E731
    grads, _ = model.backward(tag_loss(model, X, Y, lengths, None, words)[3])
    assert set(grads) == set(model.params)
    assert any(k.startswith("C.L1r.") for k in grads) and "C.E" in grads
    relu = opts.get("activation") == "relu"
    for k, w in model.params.items():
        err = rel_error(grads[k], numerical_grad(f, w, RELU_STEP if relu else STEP, relu))
        assert err < TOLERANCE, (k, err)


@pytest.mark.parametrize("cell,opts", [("lstm", {}), ("gru", {"simplified": False})])
def test_a_sentence_alone_equals_its_share_of_the_batch(cell, opts):
    model = char_tagger(cell, opts, seed=3)
    rng = np.random.default_rng(2)
    X, Y, lengths, words = batch(model, SENTS, rng)
    L, nll, n, cache = tag_loss(model, X, Y, lengths, None, words)
    grads, _ = model.backward(cache)
    total_nll, total = 0.0, {k: 0.0 for k in grads}
    for i, s in enumerate(SENTS):
        Xi, Yi, li = X[:len(s), i:i + 1], Y[:len(s), i:i + 1], lengths[i:i + 1]
        _, nll_i, _, c = tag_loss(model, Xi, Yi, li, None, model.features.batch([s]))
        g, _ = model.backward(c)
        total_nll += nll_i
        for k in g:
            total[k] = total[k] + g[k]
    np.testing.assert_allclose(nll, total_nll, rtol=1e-12)
    for k in grads:   # L averages over the batch
        np.testing.assert_allclose(len(SENTS) * grads[k], total[k], rtol=1e-10, atol=1e-12,
                                   err_msg=k)


def test_unknown_words_are_told_apart_by_their_characters():
    model = char_tagger("lstm", {})
    X, _, lengths, words = batch(model, [["Hermione", "Dumbledore", "Harry"]],
                                 np.random.default_rng(0))
    assert (X[:2, 0] == 1).all()                  # both <UNK> to the word embedding
    r, _ = wordfeat.char_forward(model.params, model.config, words.chars, words.char_lengths)
    assert r.shape == (3, 4) and not np.allclose(r[0], r[1])
    url = "http://tinyurl.com/24agj38"
    ids, lens = model.features.encode_words(["Hé", "", "Harry", url])
    assert lens.tolist() == [2, 1, 5, 20]   # an empty word reads as one <UNK>, a long one
    assert ids[1, 0] == 1 and ids[0, 0] == model.features.chars.index["H"]   # as its ends
    same, _ = model.features.encode_words([url[:10] + url[-10:]])
    np.testing.assert_array_equal(ids[:, 3], same[:, 0])


def test_the_model_file_keeps_the_characters(tmp_path):
    model = char_tagger("gru", {}, dtype="float32")
    checkpoint.save(tmp_path / "t.npz", model)
    back, _, _ = checkpoint.load(tmp_path / "t.npz")
    assert back.config.char_hidden == 2 and back.features.chars.tokens == \
        model.features.chars.tokens
    X, Y, lengths, words = batch(model, SENTS, np.random.default_rng(0))
    a = model.forward(X, None, None, lengths, words)[0]
    b = back.forward(X, None, None, lengths, back.features.batch(SENTS))[0]
    np.testing.assert_array_equal(a, b)
    z = dict(np.load(tmp_path / "t.npz"))
    z["param/C.L1r.W_aa"] = z["param/C.L1r.W_aa"][:, :1]
    np.savez(tmp_path / "bad.npz", **z)
    with pytest.raises(Exception, match="C.L1r.W_aa"):
        checkpoint.load(tmp_path / "bad.npz")


def test_config_refuses_half_a_character_network():
    with pytest.raises(ConfigError, match="both"):
        ModelConfig(task="tag", char_embed=4).validate()
    with pytest.raises(ConfigError, match="tag only"):
        ModelConfig(task="lm", char_embed=4, char_hidden=4).validate()


@pytest.mark.parametrize("cell,opts", [("lstm", {}), ("rnn", {"activation": "tanh"})])
def test_character_words_match_torch(cell, opts):
    torch = pytest.importorskip("torch")
    from test_torch_reference import LSTM_ORDER, reorder
    model = char_tagger(cell, opts, char_embed=3, char_hidden=4, seed=7)
    words = ["Harry", "a", "Roosevelt", "spell", "Hé"]
    chars, lens = model.features.encode_words(words)
    r, cache = wordfeat.char_forward(model.params, model.config, chars, lens)
    up = np.random.default_rng(0).standard_normal(r.shape)
    g = wordfeat.char_backward(up, cache, model.params, model.config)

    # the PyTorch side is the character network of the PyTorch reference tagger itself
    # (bench/torch_tagger.py: nn.Embedding -> bidirectional nn.LSTM / nn.RNN over packed words)
    spec = importlib.util.spec_from_file_location(
        "torch_tagger", Path(__file__).resolve().parent.parent / "bench" / "torch_tagger.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    n, p = 4, model.params
    fix = (lambda w: reorder(w, n, LSTM_ORDER)) if cell == "lstm" else (lambda w: w)  # noqa
    cw = bench.CharWords(p["C.E"].shape[0], 3, n, torch.nn.LSTM if cell == "lstm" else
                         functools.partial(torch.nn.RNN, nonlinearity="tanh")).double()
    emb, net = cw.emb, cw.rnn
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(p["C.E"]))
        for pre, suffix in (("C.L1.", ""), ("C.L1r.", "_reverse")):
            getattr(net, f"weight_ih_l0{suffix}").copy_(torch.tensor(fix(p[pre + "W_ax"])))
            getattr(net, f"weight_hh_l0{suffix}").copy_(torch.tensor(fix(p[pre + "W_aa"])))
            getattr(net, f"bias_ih_l0{suffix}").copy_(torch.tensor(fix(p[pre + "b"])))
            getattr(net, f"bias_hh_l0{suffix}").zero_()
    rt = cw(torch.tensor(chars), torch.tensor(lens))
    (rt * torch.tensor(up)).sum().backward()
    np.testing.assert_allclose(r, rt.detach().numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(g["C.E"], emb.weight.grad.numpy(), rtol=1e-9, atol=1e-11)
    for pre, suffix in (("C.L1.", ""), ("C.L1r.", "_reverse")):
        for mine, theirs in (("W_ax", "weight_ih"), ("W_aa", "weight_hh"), ("b", "bias_ih")):
            np.testing.assert_allclose(g[pre + mine],
                                       fix(getattr(net, f"{theirs}_l0{suffix}").grad.numpy()),
                                       rtol=1e-9, atol=1e-11, err_msg=pre + mine)


def _names(n, seed):
    g = random.Random(seed)
    return ["".join(g.choice("bcdfghklmnprstvz" if i % 2 == 0 else "aeiou")
                    for i in range(g.randint(4, 7))).capitalize() for _ in range(n)]


def _write(path, people, others, n, seed):
    """Sentences of common words, other (lower-case) words and persons (capitalised names)."""
    g = random.Random(seed)
    common = "and invented a new spell met said bears are on sale the with to".split()
    lines = []
    for _ in range(n):
        for _ in range(g.randint(1, 3)):
            if g.random() < 0.6:
                lines.append(f"{g.choice(people)}\tB-PER")
            lines += [f"{g.choice(common + others)}\tO" for _ in range(g.randint(1, 3))]
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_characters_find_persons_the_tagger_never_saw(tmp_path):
    """Dev has only names and other words that training never showed: to the word embedding
    they are all <UNK>, to the characters the names are capitalised."""
    import charlm
    train = _write(tmp_path / "train.conll", _names(40, 1), [w.lower() for w in _names(40, 3)],
                   150, 1)
    dev = _write(tmp_path / "dev.conll", _names(40, 2), [w.lower() for w in _names(40, 4)],
                 40, 2)
    f1 = {}
    for ch in (0, 6):
        tagger = charlm.train(train, task="tag", valid=dev, out=tmp_path / f"t{ch}.npz",
                              bidirectional=True, layers=1, hidden=8, embed=8, char_embed=ch,
                              char_hidden=ch, batch=8, steps=80, eval_every=20, lr=0.02, seed=1,
                              dropout=0.0, min_count=1)
        f1[ch] = tagger.evaluate(dev)["entities"]["f1"]
    assert f1[0] < 0.2 and f1[6] > 0.6, f1
