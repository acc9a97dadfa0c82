"""Vocabulary (tokenizing, ids, encode/decode), corpus splitting and the training windows."""

from __future__ import annotations

import random
import unicodedata

import numpy as np
import pytest
from conftest import flat_state
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from charlm.errors import ConfigError
from charlm.nn.model import Model, ModelConfig
from charlm.tasks.stream import Batches
from charlm.text.vocab import _CLITICS, EOS, EOS_ID, SPECIALS, UNK, UNK_ID, Vocab, split_sequences


def char_vocab(text, **kw):
    return Vocab.build(split_sequences(text), "char", **kw)


def word_vocab(text, **kw):
    return Vocab.build(split_sequences(text), "word", **kw)


# -------------------------------------------------------------- char vocabulary
def test_specials_have_fixed_ids():
    assert (EOS_ID, UNK_ID) == (0, 1)
    assert SPECIALS == (EOS, UNK) == ("<EOS>", "<UNK>")
    v = char_vocab("zzz")
    assert v.tokens[:2] == ["<EOS>", "<UNK>"]
    assert v.index["<EOS>"] == 0 and v.index["<UNK>"] == 1


def test_char_ids_ordered_by_frequency_then_lexicographically():
    # counts: y 3, z 3, x 2, ' ' 1: y before z (tie, by string order), then x, then ' '
    assert char_vocab("xyzzy yxz").tokens == ["<EOS>", "<UNK>", "y", "z", "x", " "]
    # abracadabra: a 5, b 2, r 2, c 1, d 1; counted over every line
    assert char_vocab("abra\ncadabra\n").tokens == ["<EOS>", "<UNK>", "a", "b", "r", "c", "d"]
    # upper case sorts before lower case ("B" < "a") among equal counts
    assert char_vocab("aB").tokens == ["<EOS>", "<UNK>", "B", "a"]


def test_two_builds_give_identical_tokens_whatever_the_line_order():
    text = "the quick brown fox\njumps over\nthe lazy dog\n" * 3
    lines = text.splitlines()
    random.Random(0).shuffle(lines)
    a, b = char_vocab(text), char_vocab(text)
    c = Vocab.build(lines, "char")
    assert a.tokens == b.tokens == c.tokens
    np.testing.assert_array_equal(a.encode(text), c.encode(text))


def test_char_round_trip_with_newlines():
    text = "Hello, World!\n\nSecond line\twith tab.\nLast line, no newline"
    v = char_vocab(text)
    ids = v.encode(text)
    assert len(ids) == len(text)
    assert v.decode(ids) == text
    # a line break is <EOS>, and no other character is
    assert [i for i, ch in enumerate(text) if ch == "\n"] == list(np.flatnonzero(ids == EOS_ID))
    assert UNK_ID not in ids


def test_char_encode_by_hand_and_out_of_vocabulary_to_unk():
    v = char_vocab("abba")  # <EOS> 0, <UNK> 1, a 2, b 3
    assert v.encode("ab\nba").tolist() == [2, 3, 0, 3, 2]
    assert v.encode("abz!a").tolist() == [2, 3, 1, 1, 2]
    assert v.decode([2, 3, 1, 0, 2]) == "ab<UNK>\na"
    assert v.oov_tokens("abz!a") == ["z", "!"]


def test_encode_sequences_ends_each_sequence_with_eos():
    v = char_vocab("abba")
    ids = v.encode_sequences(["ab", "", "b"])
    assert ids.tolist() == [2, 3, 0, 0, 3, 0]
    assert ids.dtype == np.uint8
    assert v.encode_sequences([]).tolist() == []


def test_id_dtype_is_the_smallest_unsigned_type():
    assert char_vocab("abc").dtype is np.uint8
    assert char_vocab("abc").encode("abcx").dtype == np.uint8
    big = "".join(chr(0x4E00 + i) for i in range(300))  # 300 distinct CJK characters
    v = char_vocab(big)
    assert len(v) == 302
    assert v.dtype is np.uint16
    ids = v.encode(big)
    assert ids.dtype == np.uint16
    assert ids.max() == 301 and v.decode(ids) == big


def test_corpus_unk_marker_is_unk_at_char_level():
    v = char_vocab("a<unk>b")
    assert v.tokens == ["<EOS>", "<UNK>", "a", "b"]  # none of < u n k > was counted
    assert v.encode("ab<unk>\nb").tolist() == [2, 3, 1, 0, 3]


def test_json_round_trip():
    v = word_vocab("one two two\nthree", lowercase=True)
    w = Vocab.from_json(v.to_json())
    assert (w.tokens, w.level, w.lowercase, w.unk_token) == (v.tokens, "word", True, "<unk>")
    np.testing.assert_array_equal(w.encode("TWO one four"), v.encode("TWO one four"))


def test_bad_vocabulary_options():
    with pytest.raises(ConfigError):
        Vocab.build(["abc"], "byte")
    with pytest.raises(ConfigError):
        Vocab.build(["abc"], "char", max_size=2)
    with pytest.raises(ConfigError):
        Vocab.build(["abc"], "char", min_count=0)


# -------------------------------------------------------------- word vocabulary
@pytest.mark.parametrize("text, tokens", [
    ("Don't stop: 3.14, 1,000 and U.S.A. rock'n'roll!",
     ["Don't", "stop", ":", "3.14", ",", "1,000", "and", "U", ".", "S", ".", "A", ".",
      "rock'n'roll", "!"]),
    ("He said (quietly) \"no\"; 50% off...",
     ["He", "said", "(", "quietly", ")", '"', "no", '"', ";", "50", "%", "off", ".", ".", "."]),
    ("well @-@ known , 3 @,@ 000 <unk> x", ["well", "@-@", "known", ",", "3", "@,@", "000",
                                           "<unk>", "x"]),
    ("naïve café, Zürich—über", ["naïve", "café", ",", "Zürich", "—", "über"]),
    ("  spaced\tout  ", ["spaced", "out"]),
])
def test_word_tokenization_by_hand(text, tokens):
    assert Vocab([*SPECIALS], "word").tokenize(text) == tokens


def test_word_vocab_order_size_cap_and_min_count():
    text = "the cat sat on the mat .\nthe dog sat .\n"
    # the 3, sat 2, . 2, cat/dog/mat/on 1: ties by string order ("." < "sat")
    full = ["<EOS>", "<UNK>", "the", ".", "sat", "cat", "dog", "mat", "on"]
    assert word_vocab(text).tokens == full
    assert word_vocab(text, max_size=4).tokens == full[:4]  # max_size counts the specials
    assert word_vocab(text, min_count=2).tokens == full[:5]
    assert word_vocab(text, min_count=3).tokens == full[:3]
    v = word_vocab(text, max_size=5)
    assert v.encode("the dog sat").tolist() == [2, UNK_ID, 4]


def test_lowercase_word_vocab():
    v = word_vocab("The the THE cat", lowercase=True)
    assert v.tokens == ["<EOS>", "<UNK>", "the", "cat"]
    assert v.encode("THE Cat").tolist() == [2, 3]


def test_corpus_unk_marker_maps_onto_unk_not_a_word_of_its_own():
    text = "the <unk> sat on the <unk> <unk>\n"
    v = word_vocab(text)
    assert "<unk>" not in v.tokens and "unk" not in v.tokens and "<" not in v.tokens
    assert v.tokens == ["<EOS>", "<UNK>", "the", "on", "sat"]
    ids = v.encode("the <unk> sat")
    assert ids.tolist() == [2, UNK_ID, 4]
    assert v.decode(ids) == "the <UNK> sat"
    # with no unknown marker configured, "<unk>" is ordinary punctuation and a word
    w = Vocab.build(["a <unk>"], "word", unk_token=None)
    assert w.tokens == ["<EOS>", "<UNK>", "<", ">", "a", "unk"]


def test_word_decode_is_readable():
    text = "Hello, world! It's 3.5 (really).\n\"Yes\" - or no?\nDon't pay $1,000.50; ok: fine."
    v = word_vocab(text)
    ids = v.encode(text)
    assert list(ids).count(EOS_ID) == 2  # the line breaks
    decoded = v.decode(ids)
    lines = decoded.split("\n")
    assert lines[0] == "Hello, world! It's 3.5 (really)."
    assert lines[2] == "Don't pay $1,000.50; ok: fine."
    # the same tokens back
    assert [v.tokenize(line) for line in lines] == [v.tokenize(s) for s in text.split("\n")]


def test_word_decode_of_wikitext_joiners_and_eos():
    v = Vocab([*SPECIALS, "well", "@-@", "known", "3", "@,@", "000", "."], "word")
    ids = [2, 3, 4, 0, 5, 6, 7, 8]
    assert v.decode(ids) == "well-known\n3,000."


# ------------------------------------------------------------ split_sequences
@pytest.mark.parametrize("text, lines", [
    ("a\nb\n", ["a", "b"]),            # a final newline does not add an empty line
    ("a\nb", ["a", "b"]),
    ("a\n\nb\n", ["a", "", "b"]),      # an inner empty line is an empty sequence
    ("\n", [""]),
    ("", []),
    ("one line", ["one line"]),
])
def test_split_sequences_one_per_line(text, lines):
    assert list(split_sequences(text)) == lines
    assert list(split_sequences(text, level="word")) == lines


def test_split_sequences_prose_char_joins_paragraphs():
    text = "It rained.  We\nleft!\nThe end.\n\n\n  \nNext\n   paragraph.\n"
    assert list(split_sequences(text, prose=True)) == [
        "It rained. We left! The end.", "Next paragraph."]


def test_split_sequences_prose_word_gives_sentences():
    # a sentence ends at . ! ? before a capital or a digit, across hard-wrapped lines
    text = "It rained. We left!\nDid you? Yes.\n\n3 men came. 2 left,\ni.e. not all."
    assert list(split_sequences(text, prose=True, level="word")) == [
        "It rained.", "We left!", "Did you?", "Yes.", "3 men came.", "2 left, i.e. not all."]


def test_split_sequences_prose_word_keeps_closing_quotes_and_brackets():
    """KNOWN BUG (vocab.py, _SENTENCE_END): the closing marks after a sentence end are part of
    the split separator, so re.split throws them away and text is lost."""
    text = 'He said "Stop." Then he left. (It was late.) Fine!'
    sentences = list(split_sequences(text, prose=True, level="word"))
    # nothing but the whitespace between sentences may disappear
    assert "".join(s.replace(" ", "") for s in sentences) == text.replace(" ", "")
    assert sentences == ['He said "Stop."', "Then he left.", "(It was late.)", "Fine!"]


# ---------------------------------------------------------- property tests
# Any str, lone surrogates included (st.text() leaves them out; Python puts them in str for
# undecodable bytes of argv and file names, through the surrogateescape handler).
any_text = st.one_of(
    st.text(),
    st.lists(st.one_of(st.characters(), st.characters(categories=["Cs"]))).map("".join))


@settings(max_examples=200, deadline=None)
@given(corpus=any_text, text=any_text)
def test_char_tokenize_and_encode_never_crash(corpus, text):
    v = char_vocab(corpus)
    toks = v.tokenize(text.replace("\n", ""))
    ids = v.encode(text)
    assert ids.dtype == v.dtype
    assert ids.size == 0 or int(ids.max()) < len(v)
    if "<unk>" not in text:
        # text is read in its normal form (NFC: '豈' U+F900 is U+8C48, a composed é is one
        # character), as the vocabulary records; the expectation is computed from that form
        text = unicodedata.normalize("NFC", text) if v.normalize == "NFC" else text
        assert len(toks) == len(text.replace("\n", ""))
        # each id is the character's own, <EOS> for a line break, <UNK> for the rest
        expect = [EOS_ID if ch == "\n" else v.index.get(ch, UNK_ID) for ch in text]
        assert ids.tolist() == expect


@settings(max_examples=200, deadline=None)
@given(text=any_text)
def test_char_round_trip_for_in_vocabulary_text(text):
    assume("<unk>" not in text)
    v = char_vocab(text)
    nfc = lambda t: unicodedata.normalize("NFC", t)  # noqa: E731  (text is read as NFC)
    assert v.decode(v.encode(text)) == nfc(text)
    # encode_sequences of the lines, decoded, is the text with every line ended
    lines = list(split_sequences(text))
    assert v.decode(v.encode_sequences(lines)) == "".join(nfc(line) + "\n" for line in lines)


@settings(max_examples=200, deadline=None)
@given(corpus=any_text, text=any_text)
def test_word_tokenize_and_encode_never_crash(corpus, text):
    v = word_vocab(corpus)
    ids = v.encode(text)
    assert ids.size == 0 or int(ids.max()) < len(v)
    assert list(ids).count(EOS_ID) == text.count("\n")
    v.decode(ids)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
def test_word_decode_gives_back_the_same_tokens(text):
    """Decoding joins tokens with spaces only where re-tokenizing splits them again, so the
    decoded text holds the same tokens. Left out: the merges decode makes on purpose
    (WikiText's @-@ joiners, a separate "n't", a quote followed by a clitic such as
    ``game ' s`` -> ``game's``) and the corpus's '<unk>' marker."""
    v = word_vocab(text)
    tokens = [v.tokenize(line) for line in text.split("\n")]
    flat = [t for line in tokens for t in line]
    assume("<unk>" not in text and "n't" not in flat)
    assume(not any(a in ("'", "’") and b in _CLITICS for line in tokens
                   for a, b in zip(line, line[1:])))
    assume(not any(t in ("@-@", "@,@", "@.@") for t in flat))
    decoded = v.decode(v.encode(text))
    assert [v.tokenize(line) for line in decoded.split("\n")] == tokens


def test_char_encode_survives_lone_surrogates():
    """Was a bug (vocab.py, Vocab._encode_chars): text.encode("utf-32-le") raised on lone
    surrogates, which Python puts in str for undecodable bytes (sys.argv and file names use
    the surrogateescape handler, so `charlm score $'caf\\xe9'` gets one). tokenize accepts
    such text and build puts the character in the vocabulary, but encode crashed."""
    text = "caf\udce9 ok"
    v = char_vocab(text)
    assert "\udce9" in v.tokens
    ids = v.encode(text)
    assert v.decode(ids) == text
    assert char_vocab("plain").encode("x\udce9").tolist() == [UNK_ID, UNK_ID]


def test_char_encode_agrees_with_tokenize_under_lowercase():
    """KNOWN BUG (vocab.py, Vocab.encode): with lowercase=True, tokenize (and so build) lowers
    the text before it looks for the corpus's '<unk>' marker, so '<UNK>' counts as one unknown
    token; encode looks for '<unk>' before lowering, so the same text encodes as five
    characters. Encode must give the ids of tokenize's tokens."""
    v = char_vocab("A<UNK>b", lowercase=True)
    assert v.tokens == ["<EOS>", "<UNK>", "a", "b"]
    expect = [v.index.get(t, UNK_ID) for t in v.tokenize("A<UNK>b")]
    assert expect == [2, UNK_ID, 3]
    assert v.encode("A<UNK>b").tolist() == expect


# ---------------------------------------------------------------- Batches
def _rows_of_targets(b: Batches):
    ys = [b.window(k)[1] for k in range(len(b))]
    return np.concatenate(ys, axis=0).T if ys else np.zeros((b.m, 0), b.grid.dtype)


def test_batches_by_hand():
    ids = np.arange(1, 12, dtype=np.uint8)  # 11 tokens, m = 2: n = 5, the 11th is left out
    b = Batches.from_stream(ids, m=2, bptt=2)
    assert b.grid.shape == (6, 2)
    assert b.grid.T.tolist() == [[0, 1, 2, 3, 4, 5], [5, 6, 7, 8, 9, 10]]
    assert (len(b), b.steps_per_row, b.tokens) == (3, 5, 10)
    X, Y = b.window(0)
    assert X.tolist() == [[0, 5], [1, 6]] and Y.tolist() == [[1, 6], [2, 7]]
    X, Y = b.window(2)  # the last window is shorter
    assert X.tolist() == [[4, 9]] and Y.tolist() == [[5, 10]]


@settings(max_examples=150, deadline=None)
@given(N=st.integers(0, 300), m=st.integers(1, 12), bptt=st.integers(1, 40))
def test_every_token_is_a_target_once_per_epoch_in_order(N, m, bptt):
    ids = (np.arange(N) % 251 + 1).astype(np.uint8)
    b = Batches.from_stream(ids, m, bptt)
    n = N // m
    assert b.steps_per_row == n and b.tokens == m * n and len(b) == -(-n // bptt)
    # row r's targets, window after window, are exactly ids[r n:(r + 1) n]
    np.testing.assert_array_equal(_rows_of_targets(b), ids[: m * n].reshape(m, n))
    for k in range(len(b)):
        X, Y = b.window(k)
        assert X.shape == Y.shape and 1 <= X.shape[0] <= bptt and X.shape[1] == m
        np.testing.assert_array_equal(X[1:], Y[:-1])       # Y[t] is X[t + 1]
        if k + 1 < len(b):                                 # the next window goes on
            np.testing.assert_array_equal(b.window(k + 1)[0][0], Y[-1])
    if n:
        # a row starts from the token that ends the previous row (row 0 from <EOS>)
        first = b.window(0)[0][0]
        assert first[0] == EOS_ID
        np.testing.assert_array_equal(first[1:], ids[n - 1: m * n - 1: n])


def test_grid_dtype_is_the_small_unsigned_dtype():
    v = char_vocab("hello world\n")
    ids = v.encode_sequences(split_sequences("hello world\n" * 50))
    b = Batches.from_stream(ids, 4, 8)
    assert ids.dtype == b.grid.dtype == np.uint8
    assert b.grid.nbytes == (b.steps_per_row + 1) * 4  # one byte per token
    assert b.grid.flags.c_contiguous
    big = "".join(chr(0x4E00 + i) for i in range(300))
    v = char_vocab(big)
    assert Batches.from_stream(v.encode_sequences([big]), 3, 5).grid.dtype == np.uint16


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_carried_state_across_windows_equals_one_long_forward(cell):
    """Truncated BPTT's carried state: window k + 1 starts from window k's final state, so the
    windows run one after another give the logits of one forward over each row's sequence."""
    text = "the apple and pear salad\nthe pear and apple tart\n" * 4
    v = char_vocab(text)
    b = Batches.from_stream(v.encode_sequences(split_sequences(text)), m=3, bptt=7)
    cfg = ModelConfig(cell=cell, layers=2, hidden=8, embed=5, dropout=0.0, dtype="float64")
    model = Model.create(cfg, v, np.random.default_rng(0))
    state, pieces, ends = model.zero_state(b.m), [], []
    for k in range(len(b)):
        X, _ = b.window(k)
        logits, state, _ = model.forward(X, state)  # window k + 1 starts where k ended
        pieces.append(logits.reshape(X.shape[0], b.m, -1))
        ends.append(sum(len(p) for p in pieces))
    whole = b.grid[:-1]
    # the state carried out of window k is the state one forward reaches after its last step
    mid = ends[len(ends) // 2 - 1]
    mid_state = model.forward(whole[:mid], model.zero_state(b.m))[1]
    carried = model.zero_state(b.m)
    for k in range(len(ends) // 2):
        carried = model.forward(b.window(k)[0], carried)[1]
    for s, f in zip(flat_state(carried), flat_state(mid_state)):
        np.testing.assert_allclose(s, f, rtol=1e-12, atol=1e-12)
    full, full_final, _ = model.forward(whole, model.zero_state(b.m))
    np.testing.assert_allclose(np.concatenate(pieces), full.reshape(len(whole), b.m, -1),
                               rtol=1e-12, atol=1e-12)
    for s, f in zip(flat_state(state), flat_state(full_final)):
        np.testing.assert_allclose(s, f, rtol=1e-12, atol=1e-12)
    # and the carried state matters: restarting every window from zero gives other logits
    restarted = np.concatenate([model.forward(b.window(k)[0], model.zero_state(b.m))[0]
                                .reshape(-1, b.m, len(v)) for k in range(len(b))])
    assert not np.allclose(restarted, full.reshape(len(whole), b.m, -1))
