"""Reading classification data: the formats, the label side, the traps, splits and folds."""

from __future__ import annotations

import numpy as np
import pytest

from charlm.errors import ConfigError, CorpusError
from charlm.tasks.classify import (
    build_vocab,
    encode_texts,
    label_ids,
    stratified_folds,
    stratified_split,
)
from charlm.text.labelled import label_set, parse_class_file, parse_labelled, read_examples


def test_label_last_detected_and_u0085_stays_inside_the_line():
    text = "good film\u0085 really\t1\nbad film\t0\nfine\tfilm\t1\n\n   \nawful\t0\n"
    ex = parse_labelled(text, "r.tsv")
    assert ex.texts == ["good film\u0085 really", "bad film", "fine\tfilm", "awful"]
    assert ex.labels == ["1", "0", "1", "0"]
    assert ex.where == ["r.tsv:1", "r.tsv:2", "r.tsv:3", "r.tsv:6"]


def test_label_first_detected():
    ex = parse_labelled("pos\ta fine film\nneg\ta dull one\npos\tlovely\n", "f")
    assert ex.labels == ["pos", "neg", "pos"] and ex.texts[1] == "a dull one"


def test_label_column_option_overrides_detection():
    ex = parse_labelled("a\tb\nc\td\n", "f", label_column="first")
    assert ex.labels == ["a", "c"] and ex.texts == ["b", "d"]
    ex = parse_labelled("a\tb\nc\td\n", "f", label_column="last")
    assert ex.labels == ["b", "d"]


def test_tie_broken_by_spaces_then_by_known_labels_then_refused():
    assert parse_labelled("a dull one\tneg\nfun\tpos\n", "f").labels == ["neg", "pos"]
    assert parse_labelled("x\tpos\ny\tneg\n", "f", known_labels=["neg", "pos"]).texts == ["x", "y"]
    with pytest.raises(CorpusError, match="f: cannot tell which column.*--label-column"):
        parse_labelled("x\tpos\ny\tneg\n", "f")


def test_fasttext_format():
    ex = parse_labelled("__label__pos great fun\n__label__neg  dull\n", "ft")
    assert ex.labels == ["pos", "neg"] and ex.texts == ["great fun", "dull"]
    with pytest.raises(CorpusError, match=r"ft, line 2: expected __label__LABEL"):
        parse_labelled("__label__pos great\nno label here\n", "ft")
    with pytest.raises(CorpusError, match=r"ft, line 1: more than one label"):
        parse_labelled("__label__a __label__b text\n", "ft")


@pytest.mark.parametrize("text, message", [
    ("good\t1\nno tab here\n", r"f, line 2: no tab"),
    ("good film\t1\nbad\t0\n\t1\n", r"f, line 3: the text is empty"),
    ("", r"f has no examples"),
])
def test_one_line_errors_name_file_and_line(text, message):
    with pytest.raises(CorpusError, match=message) as e:
        parse_labelled(text, "f")
    assert "\n" not in str(e.value)


def test_class_files_and_read_examples(tmp_path):
    (tmp_path / "p.txt").write_text("nice one\n\nlovely\n", encoding="utf-8")
    (tmp_path / "n.txt").write_text("dull\n", encoding="utf-8")
    ex = read_examples(classes=[f"pos={tmp_path / 'p.txt'}", ("neg", tmp_path / "n.txt")])
    assert ex.labels == ["pos", "pos", "neg"] and ex.texts == ["nice one", "lovely", "dull"]
    assert ex.where[1].endswith("p.txt:3")
    with pytest.raises(ConfigError, match="LABEL=FILE"):
        read_examples(classes=["pos"])
    (tmp_path / "e.txt").write_text(" \n", encoding="utf-8")
    with pytest.raises(CorpusError, match="class x"):
        parse_class_file(" \n", "e.txt", "x")


def test_label_set_and_unknown_label():
    assert label_set(["10", "2", "neg", "1"]) == ["1", "2", "10", "neg"]
    assert label_ids(["b", "a"], ["a", "b"]).tolist() == [1, 0]
    with pytest.raises(CorpusError, match=r"dev:3: the label 'c'"):
        label_ids(["c"], ["a", "b"], ["dev:3"])


def test_word_and_char_encoding():
    v = build_vocab(["A good film", "a bad film"], "word", lowercase=True)
    ids = encode_texts(v, ["a good ending", "???"])
    assert [v.tokens[i] for i in ids[0]] == ["a", "good", "<UNK>"]
    assert [v.tokens[i] for i in ids[1]] == ["<UNK>"] * 3
    v = build_vocab(["ab", "ba"], "char")
    assert [v.tokens[i] for i in encode_texts(v, ["abc"])[0]] == ["a", "b", "<UNK>"]
    v = build_vocab(["the the cat"], "word", min_count=2)
    assert [v.tokens[i] for i in encode_texts(v, ["the cat"])[0]] == ["the", "<UNK>"]


def test_stratified_folds_partition_and_balance():
    y = np.array([0] * 23 + [1] * 7 + [2] * 3)
    folds = stratified_folds(y, 5, seed=1)
    allidx = np.concatenate(folds)
    assert sorted(allidx.tolist()) == list(range(len(y)))
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for c, n in ((0, 23), (1, 7)):
        per = [int((y[f] == c).sum()) for f in folds]
        assert max(per) - min(per) <= 1 and sum(per) == n
    again = stratified_folds(y, 5, seed=1)
    assert all((a == b).all() for a, b in zip(folds, again))
    other = stratified_folds(y, 5, seed=2)
    assert any((a != b).any() if len(a) == len(b) else True for a, b in zip(folds, other))


def test_stratified_split():
    y = np.array([0] * 50 + [1] * 10)
    tr, va = stratified_split(y, 0.2, seed=0)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 60
    assert int((y[va] == 0).sum()) == 10 and int((y[va] == 1).sum()) == 2
