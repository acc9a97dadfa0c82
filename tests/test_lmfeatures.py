"""charlm's own character LMs as a tagger's features, and the backward LM (--reverse).

- ``charlm train --reverse`` trains on each line read backwards, records it, and its model
  scores a sentence read from its end (checked against the forward path on the reversed text);
- the feature of a word is the forward LM's state after the word's last character and the
  backward LM's after its first: checked against running each LM alone over the text's prefix;
- a tagger with character words and LM features trains in the one trainer, ships the LMs in
  its own model file (tag, eval and the API work from that file alone), and resumes exactly.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_tagging import arrays_of, write_conll
from typer.testing import CliRunner

import charlm
from charlm.cli import app
from charlm.errors import ConfigError
from charlm.nn import charwords as wordfeat
from charlm.tasks.metrics import significant
from charlm.tasks.stream import prepare_corpus
from charlm.text.vocab import EOS_ID
from charlm.training import checkpoint
from charlm.training.trainer import TrainConfig

runner = CliRunner()
LINES = "Harry Potter met Hermione\nTeddy Roosevelt said a new spell\nRon and Albus\n" * 20
LM = ["--layers", "1", "--embed", "6", "--bptt", "16", "--batch", "4", "--steps", "3",
      "--eval-every", "3", "--seed", "3"]


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    d = tmp_path_factory.mktemp("lms")
    (d / "text.txt").write_text(LINES, encoding="utf-8")
    for name, extra in (("fwd", ["--hidden", "5"]), ("bwd", ["--hidden", "4", "--reverse"])):
        r = runner.invoke(app, ["train", str(d / "text.txt"), "--out", str(d / f"{name}.npz"),
                                *LM, *extra])
        assert r.exit_code == 0, r.output
    return d


def test_reverse_trains_on_reversed_lines():
    cfg = TrainConfig(reverse=True, valid_fraction=0.0, batch=1, bptt=4)
    fwd = prepare_corpus(["abc\nxy\n"], TrainConfig(valid_fraction=0.0, batch=1, bptt=4))
    bwd = prepare_corpus(["abc\nxy\n"], cfg)
    assert bwd.vocab.decode(bwd.train_ids) == "cba\nyx\n"
    assert fwd.vocab.tokens == bwd.vocab.tokens
    with pytest.raises(ConfigError, match="--reverse"):
        TrainConfig(reverse=True, level="word").validate()


def test_a_backward_lm_is_recorded_and_scores_the_sentence_from_its_end(lms):
    bwd = charlm.load_model(lms / "bwd.npz")
    fwd = charlm.load_model(lms / "fwd.npz")
    assert bwd.reverse and not fwd.reverse
    s = bwd.score("Harry met Ron")
    assert s.text == "Harry met Ron"
    from charlm.use.score import score
    assert s.log_prob == pytest.approx(score(bwd.model, "noR tem yrraH").log_prob, rel=1e-12)
    r = runner.invoke(app, ["score", "--model", str(lms / "bwd.npz"), "Harry met Ron", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["log_prob"] == pytest.approx(s.log_prob)
    text = bwd.sample(seed=1, length=30, prime="Ron")
    assert text.split("\n")[0].endswith("Ron")   # written from the end of the line


def test_word_features_are_the_lm_states_at_each_word(lms):
    f = wordfeat.WordFeatures.build([], 0, [checkpoint.load_lm(lms / "fwd.npz"),
                                            checkpoint.load_lm(lms / "bwd.npz")])
    assert [rev for _, rev in f.lms] == [False, True] and f.lm_size == 9
    sents = [["Harry", "Potter", "met"], ["a"], ["Teddy", "Roosevelt", "said", "Hé"]]
    feats = f.lm_states(sents)
    (fm, _), (bm, _) = f.lms

    def last_state(lm, text):   # the LM alone over <EOS> + text: its top state at the end
        ids = np.r_[EOS_ID, lm.vocab.encode(text)].astype(np.int64)[:, None]
        return lm.encode(ids, None)[0][-1, 0]

    for s, got in zip(sents, feats):
        text = " ".join(s)
        assert got.shape == (len(s), 9)
        start = 0
        for k, w in enumerate(s):
            np.testing.assert_allclose(got[k, :5], last_state(fm, text[:start + len(w)]),
                                       rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got[k, 5:], last_state(bm, text[start:][::-1]),
                                       rtol=1e-5, atol=1e-6)
            start += len(w) + 1


def test_a_char_and_lm_tagger_ships_its_lms_and_resumes_exactly(lms, tmp_path):
    train = write_conll(tmp_path / "train.conll", 60, 1)
    dev = write_conll(tmp_path / "dev.conll", 15, 2)
    opts = ["train", "--task", "tag", str(train), "--valid", str(dev), "--bidirectional",
            "--layers", "1", "--hidden", "6", "--embed", "4", "--char-embed", "3",
            "--char-hidden", "3", "--lm-features", f"{lms / 'fwd.npz'},{lms / 'bwd.npz'}",
            "--batch", "8", "--eval-every", "4", "--seed", "2"]
    r = runner.invoke(app, [*opts, "--steps", "8", "--out", str(tmp_path / "ref.npz")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*opts, "--steps", "4", "--out", str(tmp_path / "int.npz")])
    assert r.exit_code == 0, r.output
    for f in ("fwd.npz", "bwd.npz"):            # the tagger needs nothing but its own file
        (lms / f).rename(tmp_path / f)
    try:
        r = runner.invoke(app, ["train", "--task", "tag", str(train), "--valid", str(dev),
                                "--resume", "--steps", "4", "--out", str(tmp_path / "int.npz")])
        assert r.exit_code == 0, r.output
        a, b = arrays_of(tmp_path / "ref.npz"), arrays_of(tmp_path / "int.npz")
        assert a.keys() == b.keys() and "lm/1/param/L1.W_aa" in a and "param/C.E" in a
        for k in a:
            assert np.array_equal(a[k], b[k]), k
        model, _, _ = checkpoint.load(tmp_path / "ref.npz")
        assert model.config.char_hidden == 3 and model.config.lm_features == 9
        tagger = charlm.load_model(tmp_path / "ref.npz")
        t = tagger.tag("Harry Potter met Zacharias Smith")
        assert len(t.labels) == 5
        r = runner.invoke(app, ["tag", "--model", str(tmp_path / "ref.npz"), "--json",
                                "Harry Potter met Zacharias Smith"])
        assert r.exit_code == 0 and json.loads(r.stdout)["labels"] == t.labels
        r = runner.invoke(app, ["eval", str(dev), "--model", str(tmp_path / "ref.npz"),
                                "--json"])
        assert r.exit_code == 0, r.output
        ev = tagger.evaluate(dev)
        assert json.loads(r.stdout)["accuracy"] == significant(ev["accuracy"])
        r = runner.invoke(app, ["info", "--model", str(tmp_path / "ref.npz"), "--json"])
        assert r.exit_code == 0, r.output
        info = json.loads(r.stdout)
        assert info["config"]["char_hidden"] == 3 and info["config"]["lm_features"] == 9
        assert info["parameters_per_layer"]["C"] == sum(
            v.size for k, v in model.params.items() if k.startswith("C."))
        r = runner.invoke(app, ["info", "--model", str(tmp_path / "ref.npz")])
        assert r.exit_code == 0 and "backward char LM 1×LSTM 4" in r.output
    finally:
        for f in ("fwd.npz", "bwd.npz"):
            (tmp_path / f).rename(lms / f)


def test_lm_features_refuse_a_word_model_and_other_tasks(tmp_path):
    (tmp_path / "t.txt").write_text(LINES, encoding="utf-8")
    r = runner.invoke(app, ["train", str(tmp_path / "t.txt"), "--level", "word", *LM,
                            "--hidden", "4", "--eval-batch", "4", "--out", str(tmp_path / "w.npz")])
    assert r.exit_code == 0, r.output
    with pytest.raises(ConfigError, match="not a character language model"):
        checkpoint.load_lm(tmp_path / "w.npz")
    r = runner.invoke(app, ["train", str(tmp_path / "t.txt"), "--lm-features",
                            str(tmp_path / "w.npz"), "--out", str(tmp_path / "x.npz")])
    assert r.exit_code != 0 and "--task tag" in r.output
