"""charlm train --task classify, charlm classify and charlm eval on a classifier, as a user
meets them; every printed figure is compared with the library's own result."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
from typer.testing import CliRunner

import charlm
from charlm.cli import app
from charlm.tasks.metrics import classification_report, significant
from charlm.text.vocab import SPECIALS
from charlm.training import checkpoint

SMALL = ["--task", "classify", "--level", "word", "--cell", "gru", "--layers", "1",
         "--hidden", "8", "--embed", "8", "--batch", "8", "--lr", "0.02", "--eval-every", "10",
         "--dropout", "0"]


def invoke(*args, **kw):
    return CliRunner().invoke(app, [str(a) for a in args], **kw)


def toy_tsv(path, n=80, seed=0, label_first=False):
    r = random.Random(seed)
    lines = []
    for i in range(n):
        lab = ["pos", "neg"][i % 2]
        word = {"pos": "fine", "neg": "dull"}[lab]
        text = " ".join([word] + [r.choice("abcdefg") for _ in range(r.randint(1, 5))])
        lines.append(f"{lab}\t{text}" if label_first else f"{text}\t{lab}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("clf")
    data = toy_tsv(d / "train.tsv")
    r = invoke("train", *SMALL, data, "--steps", "40", "--out", d / "c.npz")
    assert r.exit_code == 0, r.output
    return d, d / "c.npz"


def test_train_summary_and_model(trained):
    d, model = trained
    clf = charlm.load_model(model)
    assert clf.labels == ["neg", "pos"] and clf.config.task == "classify"
    hist = clf.train_meta["run"]["history"]
    assert clf.train_meta["run"]["best_valid"] == max(h["valid_accuracy"] for h in hist)


def test_classify_matches_library(trained):
    d, model = trained
    clf = charlm.load_model(model)
    texts = ["fine a b", "dull c"]
    r = invoke("classify", *texts, "--model", model, "--all")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    for line, p in zip(lines, clf.classify_many(texts)):
        label, prob, other = line.split("\t")
        assert label == p.label and float(prob) == pytest.approx(p.probability, abs=1e-4)
        name, q = other.split("=")
        assert float(q) == pytest.approx(p.probabilities[name], abs=1e-4)


def test_classify_file_one_line_per_line_json(trained, tmp_path):
    d, model = trained
    f = tmp_path / "in.txt"
    f.write_text("fine a\n\ndull b\u0085 c\n", encoding="utf-8")
    r = invoke("classify", "--file", f, "--model", model, "--json")
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) == 3        # U+0085 is escaped: one object, one line
    objs = [json.loads(s) for s in r.stdout.splitlines()]
    assert [o["text"] for o in objs] == ["fine a", "", "dull b\u0085 c"]
    assert objs[1]["label"] is None
    assert set(objs[0]) == {"text", "label", "probability", "distribution"}
    r = invoke("classify", "-", "--model", model, input="fine a\ndull\n")
    assert len(r.stdout.splitlines()) == 2
    r = invoke("classify", "--file", f, "--model", model)
    assert r.stdout.split("\n")[1] == ""                 # the empty line stays in place


def test_eval_matches_hand_report(trained, tmp_path):
    d, model = trained
    test = toy_tsv(tmp_path / "test.tsv", n=30, seed=5, label_first=True)
    clf = charlm.load_model(model)
    from charlm.text.labelled import read_examples
    ex = read_examples([test])
    pred = [clf.labels.index(p.label) for p in clf.classify_many(ex.texts)]
    gold = [clf.labels.index(lab) for lab in ex.labels]
    want = classification_report(np.array(gold), np.array(pred), clf.labels)
    r = invoke("eval", test, "--model", model, "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    # ratios in JSON to 6 significant digits, counts exact
    assert got["confusion"] == want["confusion"]
    assert got["accuracy"] == significant(want["accuracy"])
    assert got["per_class"] == {c: {k: significant(v) if isinstance(v, float) else v
                                    for k, v in row.items()}
                                for c, row in want["per_class"].items()}
    r = invoke("eval", test, "--model", model)
    assert f"accuracy {100 * want['accuracy']:.2f} %" in r.stdout
    assert "confusion matrix" in r.stdout


def test_folds_cli(tmp_path):
    data = toy_tsv(tmp_path / "d.tsv", n=40)
    r = invoke("train", *SMALL, data, "--steps", "10", "--folds", "2", "--out",
               tmp_path / "cv.npz")
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "cv.cv.json").read_text())
    accs = [f["accuracy"] for f in s["per_fold"]]
    assert len(accs) == 2 and s["mean_accuracy"] == pytest.approx(sum(accs) / 2)
    assert f"{100 * s['mean_accuracy']:.2f} %" in r.stdout
    assert charlm.load_model(tmp_path / "cv.npz").train_meta["run"]["step"] == 10


@pytest.mark.parametrize("args, code, message", [
    (["--folds", "2", "--valid", "{data}"], 2, "--folds makes its own validation"),
    (["--class", "pos"], 2, "--class takes LABEL=FILE"),
])
def test_usage_errors(tmp_path, args, code, message):
    data = toy_tsv(tmp_path / "d.tsv", n=20)
    r = invoke("train", *SMALL, data, "--steps", "2",
               *[a.format(data=data) for a in args], "--out", tmp_path / "x.npz")
    assert r.exit_code == code and message in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2    # the bundled-corpus notice at most


def test_bad_line_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a film\tpos\nno tab at all\n", encoding="utf-8")
    r = invoke("train", *SMALL, bad, "--steps", "2", "--out", tmp_path / "x.npz")
    assert r.exit_code == 1
    assert r.stderr.strip() == (f"Error: {bad}, line 2: no tab between a label and a text "
                                "('no tab at all'). Write LABEL<TAB>TEXT, TEXT<TAB>LABEL or "
                                "__label__X text, one example per line.")


def test_classify_refuses_a_language_model(tmp_path):
    m = tmp_path / "lm.npz"
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc abd\n" * 200, encoding="utf-8")
    r = invoke("train", corpus, "--hidden", "4", "--embed", "4", "--layers", "1", "--batch",
               "4", "--bptt", "8", "--steps", "2", "--out", m)
    assert r.exit_code == 0, r.output
    r = invoke("classify", "x", "--model", m)
    assert r.exit_code == 2 and "not a classifier" in r.stderr


def test_python_api_train_with_class_files(tmp_path):
    pos, neg = tmp_path / "pos.txt", tmp_path / "neg.txt"
    pos.write_text("fine a\nfine b c\nfine d\nfine e\n", encoding="utf-8")
    neg.write_text("dull a\ndull b\ndull c d\ndull e\n", encoding="utf-8")
    clf = charlm.train(task="classify", classes=[f"pos={pos}", ("neg", neg)], level="char",
                       hidden=4, embed=4, layers=1, steps=3, batch=4, valid_fraction=0.25,
                       pool="last", out=tmp_path / "m.npz")
    assert clf.labels == ["neg", "pos"] and clf.config.pool == "last"
    assert clf.vocab.level == "char" and clf.train_meta["run"]["step"] == 3
    label, probs = clf.classify("fine")
    assert label in probs and sum(probs.values()) == pytest.approx(1.0)


def test_info_on_a_classifier(trained):
    d, model = trained
    r = invoke("info", "--model", model)
    assert r.exit_code == 0, r.output
    assert "task        classify, 2 labels: neg pos" in r.stdout
    assert re.search(r"best        validation accuracy \d+\.\d\d % at step", r.stdout)
    r = invoke("info", "--model", model, "--json")
    assert json.loads(r.stdout)["labels"] == ["neg", "pos"]


def test_tokenizer_whitespace_reads_a_tokenized_corpus_as_it_is_split(tmp_path):
    """--tokenizer whitespace (word level) keeps exactly the space-separated pieces of a text
    already tokenized, as a sentence-polarity corpus is; the default splits them further."""
    data = tmp_path / "d.tsv"
    data.write_text("pos\the's a co-star .\nneg\tit's dull .\n" * 10, encoding="utf-8")
    for tokenizer, expect in (("whitespace", {"he's", "a", "co-star", ".", "it's", "dull"}),
                              ("words", {"he's", "a", "co", "-", "star", ".", "it's", "dull"})):
        r = invoke("train", data, *SMALL, "--tokenizer", tokenizer, "--steps", 1,
                   "--out", tmp_path / f"{tokenizer}.npz")
        assert r.exit_code == 0, r.output
        model = checkpoint.load(tmp_path / f"{tokenizer}.npz")[0]
        assert set(model.vocab.tokens) - set(SPECIALS) == expect, tokenizer
