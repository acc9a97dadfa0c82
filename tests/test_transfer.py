"""A tagger's or classifier's encoder started from charlm's own language models (--init-from),
and a classifier with LM features (--lm-features).

- the arrays --init-from says it copies are the LM file's, array by array (the embedding row by
  row, matched by token); everything else is what the same run without --init-from starts
  from; a backward LM's first-layer input weights are fitted to the forward embedding
  (checked by the least-squares property, exact here);
- a model of the wrong level or task, or of another shape, is refused with one line;
- the fine-tuned model's file loads, classifies or tags, and resumes bit for bit;
- a classifier with LM features: its forward pass against one assembled by hand, its
  gradient against finite differences, and its file ships the LMs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import whole_and_resumed
from test_lmfeatures import LINES
from test_tagging import arrays_of, write_conll
from typer.testing import CliRunner

import charlm
from charlm.cli import app
from charlm.errors import ConfigError
from charlm.nn import encoder
from charlm.nn.charwords import WordFeatures
from charlm.nn.model import Model, ModelConfig
from charlm.nn.pooling import pool_forward
from charlm.tasks import classify
from charlm.training import checkpoint
from charlm.training.runs import prepare_training

runner = CliRunner()
LM = ["--bptt", "8", "--batch", "4", "--steps", "3", "--eval-every", "3", "--seed", "5",
      "--eval-batch", "4"]
REVIEWS = ["Harry met Ron and a new spell\t1", "Teddy said nothing here\t0",
           "Albus and Hermione met a friend\t1", "a dull spell , said Ron\t0",
           "Potter met Roosevelt\t1", "nothing works , zebra quagga\t0"] * 6


def lm_params(path) -> dict:
    """The parameters in an LM's model file, read as plain arrays (not through charlm)."""
    return {k[len("param/"):]: v for k, v in arrays_of(path).items() if k.startswith("param/")}


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    """Language models: word level (2 layers; one-hot inputs too) and a forward and backward
    char-level pair over a five-letter alphabet."""
    d = tmp_path_factory.mktemp("transfer")
    (d / "words.txt").write_text(LINES.lower(), encoding="utf-8")
    (d / "abc.txt").write_text("abc cab\nbad dab\nacd cba\n" * 30, encoding="utf-8")
    runs = {"word": ["words.txt", "--level", "word", "--lowercase", "--layers", "2",
                     "--hidden", "5", "--embed", "4"],
            "onehot": ["words.txt", "--level", "word", "--layers", "1", "--hidden", "4",
                       "--embed", "0"],
            "fwd": ["abc.txt", "--layers", "1", "--hidden", "4", "--embed", "8"],
            "bwd": ["abc.txt", "--layers", "1", "--hidden", "4", "--embed", "8", "--reverse",
                    "--seed", "9"]}
    for name, args in runs.items():
        r = runner.invoke(app, ["train", str(d / args[0]), *args[1:], *LM,
                                "--out", str(d / f"{name}.npz")])
        assert r.exit_code == 0, r.output
    (d / "reviews.tsv").write_text("\n".join(REVIEWS) + "\n", encoding="utf-8")
    (d / "abc.tsv").write_text("\n".join(["abc ab\t1", "cab ba\t0", "bca\t1", "ac cc\t0"] * 6)
                               + "\n", encoding="utf-8")
    return d


def started(tmp_path, name, data, task="classify", **opts):
    """The parameters a run starts from (nothing trained), and the events it reported."""
    events = []
    trainer = prepare_training(data, task=task, out=tmp_path / f"{name}.npz", steps=1,
                               callback=events.append, **opts)
    return trainer.model, events


def test_init_from_copies_the_embedding_by_token_and_the_layers(lms, tmp_path):
    lm_file = lms / "word.npz"
    src, lm = charlm.load_model(lm_file).model, lm_params(lm_file)
    shape = {"hidden": 5, "embed": 4, "layers": 2, "lowercase": True}
    model, events = started(tmp_path, "a", lms / "reviews.tsv", init_from=lm_file)
    fresh, _ = started(tmp_path, "b", lms / "reviews.tsv", **shape)
    c = model.config
    assert (c.hidden, c.embed, c.layers, c.bidirectional) == (5, 4, 2, True)
    assert model.vocab.tokens == fresh.vocab.tokens and model.vocab.lowercase
    H, p, f = 5, model.params, fresh.params
    known = [t for t in model.vocab.tokens if t in src.vocab.index]
    unknown = [t for t in model.vocab.tokens if t not in src.vocab.index]
    assert "harry" in known and "zebra" in unknown
    for i, t in enumerate(model.vocab.tokens):
        want = lm["E"][src.vocab.index[t]] if t in src.vocab.index else f["E"][i]
        assert np.array_equal(p["E"][i], want), t
    for k in ("L1.W_ax", "L1.W_aa", "L1.b", "L2.W_aa", "L2.b"):
        assert np.array_equal(p[k], lm[k]), k
    assert np.array_equal(p["L2.W_ax"][:, :H], lm["L2.W_ax"])       # reads the forward half
    assert np.array_equal(p["L2.W_ax"][:, H:], f["L2.W_ax"][:, H:])  # the backward half: new
    for k in p:
        if k.startswith(("L1r.", "L2r.", "W_y", "b_y")):
            assert np.array_equal(p[k], f[k]), k
    warn = [e["message"] for e in events if e["kind"] == "warning"]
    assert any(f"{len(unknown)} of the {len(model.vocab)} tokens" in w for w in warn), warn


def test_a_tagger_with_character_words_starts_its_word_columns_from_the_lm(lms, tmp_path):
    conll = write_conll(tmp_path / "t.conll", 40, 3)
    lm_file = lms / "word.npz"
    src, lm = charlm.load_model(lm_file).model, lm_params(lm_file)
    model, _ = started(tmp_path, "a", conll, task="tag", init_from=lm_file)
    fresh, _ = started(tmp_path, "b", conll, task="tag", hidden=5, embed=4, layers=2,
                       lowercase=True)
    assert model.config.char_hidden > 0 and model.config.bidirectional   # the tag defaults
    p, f, n_e = model.params, fresh.params, 4
    assert np.array_equal(p["L1.W_ax"][:, :n_e], lm["L1.W_ax"])
    assert np.array_equal(p["L1.W_ax"][:, n_e:], f["L1.W_ax"][:, n_e:])   # character words
    assert p["L1.W_ax"].shape[1] > n_e
    for k in p:
        if k.startswith(("C.", "L1r.", "W_y")):
            assert np.array_equal(p[k], f[k]), k
    i = model.vocab.index["met"]
    assert np.array_equal(p["E"][i], lm["E"][src.vocab.index["met"]])


def test_one_hot_inputs_copy_the_input_columns_by_token(lms, tmp_path):
    lm_file = lms / "onehot.npz"
    src, lm = charlm.load_model(lm_file).model, lm_params(lm_file)
    model, _ = started(tmp_path, "a", lms / "reviews.tsv", init_from=lm_file)
    fresh, _ = started(tmp_path, "b", lms / "reviews.tsv", hidden=4, embed=0, layers=1)
    assert "E" not in model.params and not model.vocab.lowercase
    for i, t in enumerate(model.vocab.tokens):
        col = model.params["L1.W_ax"][:, i]
        want = (lm["L1.W_ax"][:, src.vocab.index[t]] if t in src.vocab.index
                else fresh.params["L1.W_ax"][:, i])
        assert np.array_equal(col, want), t
    assert np.array_equal(model.params["L1.W_aa"], lm["L1.W_aa"])


def test_a_backward_lm_starts_the_backward_direction(lms, tmp_path):
    fwd_file, bwd_file = lms / "fwd.npz", lms / "bwd.npz"
    fwd, bwd = (charlm.load_model(x).model for x in (fwd_file, bwd_file))
    fl, bl = lm_params(fwd_file), lm_params(bwd_file)
    model, events = started(tmp_path, "a", lms / "abc.tsv", level="char",
                            init_from=f"{fwd_file},{bwd_file}")
    p = model.params
    for k in ("L1.W_ax", "L1.W_aa", "L1.b"):
        assert np.array_equal(p[k], fl[k]), k
    for k in ("W_aa", "b"):
        assert np.array_equal(p["L1r." + k], bl["L1." + k]), k
    # fitted: W e_f(v) = W_b e_b(v) for every token the three vocabularies share (here as
    # many as the embedding's size allows, so the least-squares fit is exact)
    shared = [t for t in model.vocab.tokens if t in fwd.vocab.index and t in bwd.vocab.index]
    assert 3 < len(shared) <= 8
    for t in shared:
        got = p["L1r.W_ax"] @ p["E"][model.vocab.index[t]]
        want = bl["L1.W_ax"] @ bl["E"][bwd.vocab.index[t]]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert any("backward direction" in e["message"] for e in events if e["kind"] == "notice")


def one_line_error(r, exit_code=2) -> str:
    assert r.exit_code == exit_code, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    return lines[0]


def test_a_model_of_the_wrong_level_task_or_shape_is_refused(lms, tmp_path):
    conll = write_conll(tmp_path / "t.conll", 20, 3)
    r = runner.invoke(app, ["train", "--task", "classify", str(lms / "reviews.tsv"),
                            "--steps", "1", "--out", str(tmp_path / "c.npz")])
    assert r.exit_code == 0, r.output

    def train(*args):
        return runner.invoke(app, ["train", *args, "--steps", "1", "--out",
                                   str(tmp_path / "x.npz")])
    word, fwd, bwd = (str(lms / f"{n}.npz") for n in ("word", "fwd", "bwd"))
    assert "char-level language model" in one_line_error(
        train("--task", "tag", str(conll), "--init-from", fwd))
    assert "word-level language model" in one_line_error(
        train("--task", "classify", str(lms / "abc.tsv"), "--level", "char",
              "--init-from", word))
    assert "holds a classify model, not a language model" in one_line_error(
        train("--task", "classify", str(lms / "reviews.tsv"), "--init-from",
              str(tmp_path / "c.npz")))
    assert "--hidden 5 but this model --hidden 7" in one_line_error(
        train("--task", "classify", str(lms / "reviews.tsv"), "--init-from", word,
              "--hidden", "7"))
    assert "--layers" in one_line_error(
        train("--task", "classify", str(lms / "reviews.tsv"), "--init-from", word,
              "--layers", "1"))
    assert "stands second" in one_line_error(
        train("--task", "classify", str(lms / "abc.tsv"), "--level", "char", "--init-from",
              f"{fwd},{fwd}"))
    assert "stands first" in one_line_error(
        train("--task", "classify", str(lms / "abc.tsv"), "--level", "char", "--init-from",
              bwd))
    assert "backward direction" in one_line_error(
        train("--task", "classify", str(lms / "abc.tsv"), "--level", "char", "--init-from",
              f"{fwd},{bwd}", "--no-bidirectional"))
    assert not (tmp_path / "x.npz").exists()
    with pytest.raises(ConfigError, match="one model file"):
        prepare_training(lms / "words.txt", out=tmp_path / "l.npz", init_from=f"{word},{word}",
                         steps=1)


@pytest.mark.parametrize("task", ["classify", "tag"])
def test_a_fine_tuned_model_loads_works_and_resumes_exactly(lms, tmp_path, task):
    data = (lms / "reviews.tsv" if task == "classify"
            else write_conll(tmp_path / "t.conll", 40, 3))
    common = ["train", "--task", task, str(data), "--init-from", str(lms / "word.npz"),
              "--eval-every", "2", "--batch", "8"]
    r = runner.invoke(app, [*common, "--steps", "6", "--out", str(tmp_path / "ref.npz")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*common, "--steps", "3", "--out", str(tmp_path / "int.npz")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["train", "--task", task, "--resume", "--steps", "3", "--out",
                            str(tmp_path / "int.npz")])
    assert r.exit_code == 0, r.output
    a, b = arrays_of(tmp_path / "ref.npz"), arrays_of(tmp_path / "int.npz")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    meta = checkpoint.load(tmp_path / "ref.npz")[1]
    assert meta["config"]["init_from"] == str((lms / "word.npz").resolve())
    model = charlm.load_model(tmp_path / "ref.npz")
    if task == "classify":
        label, probs = model.classify("Harry met a zebra")
        assert label in ("0", "1") and sum(probs.values()) == pytest.approx(1.0)
    else:
        assert len(model.tag("Harry Potter met Ron").labels) == 4
    r = runner.invoke(app, ["info", "--model", str(tmp_path / "ref.npz")])
    assert r.exit_code == 0 and f"started     from {(lms / 'word.npz').resolve()}" in r.output


# --------------------------------------------------------- --lm-features: classify
def test_text_words_are_the_tokens_of_each_id_with_their_case():
    v = classify.build_vocab(["Harry met RON", "ron"], "word", lowercase=True)
    texts = ["Harry met RON , twice", "   ", "Zebra!"]
    words = classify.text_words(v, texts)
    ids = classify.encode_texts(v, texts)
    assert words == [["Harry", "met", "RON", ",", "twice"], [""], ["Zebra", "!"]]
    assert [len(w) for w in words] == [len(x) for x in ids]


def feature_classifier(lms_dir, pool="max", seed=0):
    lms = [checkpoint.load_lm(lms_dir / "fwd.npz"), checkpoint.load_lm(lms_dir / "bwd.npz")]
    features = WordFeatures.build([], 0, lms)
    vocab = classify.build_vocab(["abc cab bad", "dab acd"], "word")
    cfg = ModelConfig(task="classify", hidden=3, embed=2, layers=1, bidirectional=True,
                      pool=pool, dropout=0.0, dtype="float64", lm_features=features.lm_size)
    return Model.create(cfg, vocab, np.random.default_rng(seed), ["0", "1"], features)


def test_a_classifier_reads_the_lm_states_at_each_word(lms):
    model = feature_classifier(lms)
    texts = ["abc cab", "bad", "dab acd abc zz"]
    P = classify.predict_texts(model, texts, m=2)
    (fm, _), (bm, _) = model.features.lms
    for text, p in zip(texts, P):        # assembled by hand, one text at a time
        words = text.split()
        ids = model.vocab.encode(text).astype(np.int64)
        feats = []
        for k, w in enumerate(words):    # the LM alone over the prefix and the reversed suffix
            start = len(" ".join(words[:k])) + (1 if k else 0)
            f_ids = np.r_[0, fm.vocab.encode(text[:start + len(w)])].astype(np.int64)[:, None]
            b_ids = np.r_[0, bm.vocab.encode(text[start:][::-1])].astype(np.int64)[:, None]
            feats.append(np.r_[fm.encode(f_ids, None)[0][-1, 0], bm.encode(b_ids, None)[0][-1, 0]])
        x = np.concatenate([model.params["E"][ids], np.array(feats)], axis=1)[:, None, :]
        lengths = np.array([len(ids)])
        h, _ = encoder.infer(model.params, model.config, x, None, lengths)
        pooled, _ = pool_forward(h, lengths, "max", True)
        z = model.output(pooled)[0]
        want = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        np.testing.assert_allclose(p, want, rtol=1e-5, atol=1e-6)


def test_a_classifier_with_lm_features_has_the_numerical_gradient(lms):
    model = feature_classifier(lms, pool="mean", seed=2)
    texts = ["abc cab", "bad dab acd", "cab"]
    ids = classify.encode_texts(model.vocab, texts)
    words = classify.text_words(model.vocab, texts)
    X, lengths = classify.pad([x.astype(np.int64) for x in ids])
    wb = model.features.batch(words, dtype=np.float64)
    y = np.array([0, 1, 1])
    _, _, _, cache = classify.loss(model, X, lengths, y, None, wb)
    grads = classify.backward(model, cache)
    rng, eps = np.random.default_rng(0), 1e-6
    for k in ("E", "L1.W_ax", "L1r.W_ax", "L1.W_aa", "W_y"):
        p = model.params[k]
        for _ in range(4):
            i = tuple(int(rng.integers(n)) for n in p.shape)
            old = p[i]
            p[i] = old + eps
            up = classify.loss(model, X, lengths, y, None, wb)[0]
            p[i] = old - eps
            down = classify.loss(model, X, lengths, y, None, wb)[0]
            p[i] = old
            assert grads[k][i] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8), k


def test_a_classifier_with_lm_features_ships_them_and_resumes_exactly(lms, tmp_path):
    data = tmp_path / "abcw.tsv"
    data.write_text("\n".join(["abc cab\t1", "bad dab\t0", "acd abc\t1", "dab bad cab\t0"] * 8)
                    + "\n", encoding="utf-8")
    feats = f"{lms / 'fwd.npz'},{lms / 'bwd.npz'}"
    common = ["train", "--task", "classify", str(data), "--lm-features", feats,
              "--hidden", "4", "--embed", "3", "--eval-every", "2", "--batch", "8"]
    whole_and_resumed(common, "classify", tmp_path)
    a, b = arrays_of(tmp_path / "ref.npz"), arrays_of(tmp_path / "int.npz")
    assert "lm/1/param/L1.W_aa" in a and a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    model = charlm.load_model(tmp_path / "ref.npz")
    assert model.config.lm_features == 8
    r = runner.invoke(app, ["classify", "--model", str(tmp_path / "ref.npz"), "--json",
                            "abc cab"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["label"] == model.classify("abc cab").label
    ev = model.evaluate(data)
    assert 0 <= ev["accuracy"] <= 1
    assert "--level word" in one_line_error(runner.invoke(
        app, ["train", "--task", "classify", str(data), "--level", "char", "--lm-features",
              feats, "--steps", "1", "--out", str(tmp_path / "x.npz")]))
