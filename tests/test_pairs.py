"""``charlm pairs``: minimal-pair accuracy against per-pair comparisons of ``score`` results,
the readers, OOV handling and the command line; and ``charlm gradients`` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from charlm.cli import app
from charlm.errors import CorpusError
from charlm.nn.model import Model, ModelConfig
from charlm.text.bundled import bundled
from charlm.text.vocab import SPECIALS, Vocab
from charlm.training import checkpoint
from charlm.use.pairs import (
    BUNDLED_PAIRS,
    Pair,
    read_jsonl,
    read_pairs,
    read_tsv,
    score_pairs,
    summarise,
)
from charlm.use.score import score

ALPHABET = sorted(set("abcdefghijklmnopqrstuvwxyz ,."))


def _model(lowercase=False, cell="gru", seed=0) -> Model:
    """A small untrained char model: its preferences are arbitrary but fixed, which is all
    the comparison with `score` needs."""
    vocab = Vocab([*SPECIALS, *ALPHABET], "char", lowercase=lowercase)
    cfg = ModelConfig(cell=cell, layers=1, hidden=12, embed=6, dropout=0.0, dtype="float64")
    return Model.create(cfg, vocab, np.random.default_rng(seed))


def _pairs():
    return [Pair("the cat was full.", "the cat were full.", "agr_1", "agreement"),
            Pair("the cats were full.", "the cats was full.", "agr_1", "agreement"),
            Pair("a dog, which ran, is here.", "a dog, which ran, are here.", "agr_2",
                 "agreement"),
            Pair("who did you see", "who did you see him", "island", "filler_gap"),
            Pair("Zebras are big.", "Zebras is big.", "agr_2", "agreement"),   # 'Z': OOV
            Pair("b.", "b.", "ties", "filler_gap")]                           # a tie


def test_accuracy_against_scores_one_by_one():
    model = _model()
    pairs = _pairs()
    res = score_pairs(model, pairs, batch=2)               # several batches, sorted by length
    by_hand = [(score(model, p.good).log_prob, score(model, p.bad).log_prob) for p in pairs]
    for r, (g, b) in zip(res, by_hand):
        assert r.log_prob_good == pytest.approx(g, rel=1e-12, abs=1e-12)
        assert r.log_prob_bad == pytest.approx(b, rel=1e-12, abs=1e-12)
    right = [g > b for g, b in by_hand]
    assert [r.correct for r in res] == right
    assert res[-1].correct is False                        # a tie is not right
    s = summarise(res)
    assert s["overall"]["correct"] == sum(right) and s["overall"]["pairs"] == 6
    assert s["overall"]["accuracy"] == pytest.approx(sum(right) / 6)
    agr = [r for r, p in zip(right, pairs) if p.term == "agreement"]
    assert s["phenomena"]["agreement"]["correct"] == sum(agr)
    assert s["paradigms"]["agr_2"]["pairs"] == 2 and s["paradigms"]["agr_2"]["oov"] == 1


def test_oov_pairs_counted_and_skipped():
    res = score_pairs(_model(), _pairs())
    assert [r.oov for r in res] == [0, 0, 0, 0, 2, 0]      # 'Z' in both sentences
    s = summarise(res, skip_oov=True)
    kept = [r for r in res if not r.oov]
    assert s["overall"]["oov"] == 1 and s["overall"]["scored"] == 5
    assert s["overall"]["correct"] == sum(r.correct for r in kept)
    assert s["paradigms"]["agr_2"]["scored"] == 1


def test_lowercased_model_lowercases():
    res = score_pairs(_model(lowercase=True), _pairs())
    assert res[4].oov == 0
    assert res[4].log_prob_good == pytest.approx(
        score(_model(lowercase=True), "zebras are big.").log_prob, rel=1e-12)


def test_readers(tmp_path):
    line = {"sentence_good": "A b.", "sentence_bad": "B a.", "UID": "u", "field": "f",
            "linguistics_term": "t", "pairID": "0"}
    (tmp_path / "one.jsonl").write_text(json.dumps(line) + "\n\n")
    (tmp_path / "two.tsv").write_text("x y.\ty x.\n")
    (tmp_path / "skip.txt").write_text("not pairs")
    got = read_pairs(tmp_path)
    assert got == [Pair("A b.", "B a.", "u", "t"), Pair("x y.", "y x.")]
    assert read_tsv("a\tb\n\nc\td\n") == [Pair("a", "b"), Pair("c", "d")]
    with pytest.raises(CorpusError, match="line 1"):
        read_tsv("only one column\n")
    with pytest.raises(CorpusError, match="line 2"):
        read_jsonl(json.dumps(line) + "\n{\"sentence_good\": \"x\"}\n")
    with pytest.raises(CorpusError):
        read_pairs(tmp_path / "missing.jsonl")


def test_bundled_pairs_are_blimp_agreement():
    pairs = read_pairs()
    assert len(pairs) == 300
    assert {p.term for p in pairs} == {"subject_verb_agreement"}
    assert len({p.uid for p in pairs}) == 6
    # byte-for-byte the first 50 pairs of each paradigm of the shared copy, where it exists
    src = Path("/work/shared/corpora/blimp/distractor_agreement_relative_clause.jsonl")
    if src.exists():
        first = read_jsonl(src.read_text(encoding="utf-8"))[:50]
        assert [p for p in pairs if p.uid == "distractor_agreement_relative_clause"] == first
    assert bundled(BUNDLED_PAIRS).name == BUNDLED_PAIRS


# ------------------------------------------------------------------ the CLI
def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture()
def model_file(tmp_path):
    path = tmp_path / "m.npz"
    checkpoint.save(path, _model())
    return path


def test_pairs_cli_json_matches_score(model_file, tmp_path):
    tsv = tmp_path / "p.tsv"
    tsv.write_text("the cat was full.\tthe cat were full.\nthe cats were.\tthe cats was.\n")
    res = invoke("pairs", tsv, "--model", model_file, "--json")
    assert res.exit_code == 0, res.stderr
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    m, _, _ = checkpoint.load(model_file)
    for row in rows[:2]:
        g, b = score(m, row["good"]).log_prob, score(m, row["bad"]).log_prob
        assert row["log_prob_good"] == pytest.approx(g) and row["diff"] == pytest.approx(g - b)
        assert row["correct"] == (g > b)
    assert rows[2]["summary"]["overall"]["pairs"] == 2
    one = invoke("pairs", "--good", "the cat was.", "--bad", "the cat were.", "--model",
                 model_file)
    assert one.exit_code == 0 and "ln P(good) - ln P(bad)" in one.stdout
    table = invoke("pairs", "--model", model_file)           # the bundled 300
    assert table.exit_code == 0, table.stderr
    assert "distractor_agreement_relative_clause" in table.stdout
    assert "of 300 pairs right" in table.stdout
    bad = invoke("pairs", "--good", "x", "--model", model_file)
    assert bad.exit_code == 2 and "--bad" in bad.stderr


def test_gradients_cli(model_file, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the cat, which ate, was full.\n" * 20)
    res = invoke("gradients", text, "--model", model_file, "--steps", "12", "--warmup", "3",
                 "--windows", "4", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    (mdl,) = doc["models"]
    assert mdl["cell"] == "gru" and len(mdl["curves"][0]["mean"]) == 13
    res = invoke("gradients", text, "--cell", "rnn,lstm", "--hidden", "8", "--layers", "1",
                 "--steps", "10", "--warmup", "2", "--windows", "3")
    assert res.exit_code == 0, res.stderr
    assert "memory span" in res.stdout and "lstm (fresh)" in res.stdout
    both = invoke("gradients", text, "--cell", "rnn", "--model", model_file)
    assert both.exit_code == 2


def test_gradients_plot_needs_matplotlib(model_file, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the cat, which ate, was full.\n" * 20)
    png = tmp_path / "g.png"
    res = invoke("gradients", text, "--model", model_file, "--steps", "5", "--warmup", "0",
                 "--windows", "2", "--plot", png)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert res.exit_code == 1 and "needs matplotlib" in res.stderr and not png.exists()
    else:
        assert res.exit_code == 0 and png.stat().st_size > 0
