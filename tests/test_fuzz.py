"""Property-based fuzzing of the input paths: tokenizers, scoring, file reading, model loading.

Arbitrary Unicode (including lone surrogates, which is how undecodable command-line bytes reach
Python), arbitrary bytes and damaged model files must never crash charlm: the tokenizers and
the scorer always answer, and the readers either succeed or raise the library's own errors.
"""

from __future__ import annotations

import math
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charlm.errors import CharlmError, CorpusError, ModelFileError
from charlm.nn.model import Model, ModelConfig
from charlm.text.files import decode_text, read_text
from charlm.text.vocab import EOS_ID, UNK_ID, Vocab, split_sequences
from charlm.training import checkpoint
from charlm.use.score import score, score_many

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Every code point, surrogates included; and a small alphabet that makes repeats and
# word/punctuation structure likely.
ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
ANY_TEXT = st.text(ANY_CHAR, max_size=200)
SMALL_TEXT = st.text(st.sampled_from(list("ab c.'\n\t,-@<>unkéß") + ["\u0130", "\U0001F600",
                                                                     "\udcff"]),
                     max_size=200)
TEXT = st.one_of(ANY_TEXT, SMALL_TEXT)


def build(text: str, level: str, **kw) -> Vocab:
    return Vocab.build(split_sequences(text, level=level), level, **kw)


# ------------------------------------------------------------------ tokenizers
@FUZZ
@given(text=TEXT)
def test_char_round_trip(text):
    """decode(encode(s)) == s for a vocabulary built from s (no unknown-marker handling), s
    in its normal form: text is read as NFC, so a decomposed é comes back composed."""
    v = build(text, "char", unk_token=None)
    ids = v.encode(text)
    assert ids.dtype == v.dtype and ((ids >= 0) & (ids < len(v))).all()
    assert UNK_ID not in ids.tolist()
    assert v.decode(ids) == unicodedata.normalize("NFC", text)
    assert ids.tolist().count(EOS_ID) == text.count("\n")


@FUZZ
@given(text=TEXT, other=TEXT, lowercase=st.booleans(), max_size=st.integers(3, 12))
def test_char_vocab_never_crashes(text, other, lowercase, max_size):
    v = build(text, "char", lowercase=lowercase, max_size=max_size)
    assert v.tokens[:2] == ["<EOS>", "<UNK>"] and len(v) <= max_size
    for s in (text, other):
        ids = v.encode(s)
        assert ((ids >= 0) & (ids < len(v))).all()
        assert isinstance(v.decode(ids), str)
        v.oov_tokens(s)
    assert len(v.encode_sequences(split_sequences(other))) >= other.count("\n")
    # and through its saved form
    w = Vocab.from_json(v.to_json())
    assert w.tokens == v.tokens and np.array_equal(w.encode(other), v.encode(other))


@FUZZ
@given(text=TEXT, other=TEXT, lowercase=st.booleans(), prose=st.booleans())
def test_word_vocab_never_crashes(text, other, lowercase, prose):
    v = Vocab.build(split_sequences(text, level="word", prose=prose), "word",
                    lowercase=lowercase)
    for s in (text, other):
        ids = v.encode(s)
        assert ((ids >= 0) & (ids < len(v))).all()
        out = v.decode(ids)
        assert isinstance(out, str)
        # every in-vocabulary token comes back (the decoder only adds or drops spaces; the
        # WikiText joiners " @-@ " are decoded to "-" on purpose)
        for i in ids.tolist():
            if i not in (EOS_ID, UNK_ID) and v.tokens[i] not in ("@-@", "@,@", "@.@"):
                assert v.tokens[i] in out
    # (decode then encode need not give the same tokens at word level: "don" "'" "t" decode
    # to "don't", which is one token; that is a property of the tokenizer, not a fault)


# ------------------------------------------------------------------ scoring
def _tiny(level: str, cell: str, seed: int) -> Model:
    corpus = "the cat sat. a dog ran!\nabc déf\n" if level == "word" else "abcde .'\n"
    vocab = build(corpus, level)
    cfg = ModelConfig(cell=cell, layers=1, hidden=6, embed=3, dropout=0.0, dtype="float32")
    return Model.create(cfg, vocab, np.random.default_rng(seed))


MODELS = {(level, cell): _tiny(level, cell, i)
          for i, (level, cell) in enumerate((lv, c) for lv in ("char", "word")
                                            for c in ("rnn", "gru", "lstm"))}


@FUZZ
@given(text=TEXT, key=st.sampled_from(sorted(MODELS)))
def test_score_is_a_finite_log_probability(text, key):
    model = MODELS[key]
    r = score(model, text)
    assert math.isfinite(r.log_prob) and r.log_prob <= 0
    assert np.all(r.log_probs <= 0) and np.all(np.isfinite(r.log_probs))
    assert r.n_tokens == len(model.vocab.encode(text)) + 1
    assert math.isfinite(r.perplexity) and r.perplexity >= 1


@FUZZ
@given(texts=st.lists(TEXT, min_size=1, max_size=6), key=st.sampled_from(sorted(MODELS)))
def test_batched_scores_equal_single_scores(texts, key):
    model = MODELS[key]
    for t, r in zip(texts, score_many(model, texts, batch=4)):
        assert r.log_prob == pytest.approx(score(model, t).log_prob, rel=1e-4, abs=1e-4)


# ------------------------------------------------------------------ file readers
@FUZZ
@given(data=st.one_of(st.binary(max_size=300), ANY_TEXT.map(
    lambda s: s.encode("utf-8", "surrogatepass"))),
       encoding=st.sampled_from(["utf-8", "latin-1", "utf-16", "ascii", "cp1252"]))
def test_decode_text_answers_or_raises_a_corpus_error(data, encoding):
    try:
        text = decode_text(data, "input.txt", encoding)
    except CorpusError as e:
        assert "\n" not in str(e) and "input.txt" in str(e)
        return
    assert isinstance(text, str) and "\r" not in text


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory) -> bytes:
    p = tmp_path_factory.mktemp("fuzz") / "m.npz"
    m = MODELS[("char", "lstm")]
    checkpoint.save(p, m, {"run": {"step": 1}},
                    {"train/optim/m/W_y": np.zeros_like(m.params["W_y"])})
    return p.read_bytes()


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_model_files_load_or_raise_model_file_error(model_bytes, tmp_path, data):
    """Flip, cut or overwrite bytes of a real model file: loading either works (a byte that
    nothing reads) or raises ModelFileError, never anything else."""
    b = bytearray(model_bytes)
    how = data.draw(st.sampled_from(["flip", "cut", "splice"]))
    if how == "flip":
        for i in data.draw(st.lists(st.integers(0, len(b) - 1), min_size=1, max_size=4)):
            b[i] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        b = b[: data.draw(st.integers(0, len(b) - 1))]
    else:
        i = data.draw(st.integers(0, len(b) - 1))
        b[i: i + 8] = data.draw(st.binary(min_size=1, max_size=16))
    p = tmp_path / "damaged.npz"
    p.write_bytes(bytes(b))
    try:
        model, _, _ = checkpoint.load(p)
    except ModelFileError as e:
        assert "\n" not in str(e)
        return
    assert all(np.isfinite(v).all() for v in model.params.values())


@FUZZ
@given(name=st.text(st.characters(exclude_characters="/\x00", exclude_categories=("Cs",)),
                    min_size=1, max_size=20))
def test_read_text_of_odd_paths(tmp_path_factory, name):
    d = tmp_path_factory.mktemp("paths")
    try:
        read_text(d / name)
    except CharlmError as e:
        assert "\n" not in str(e).replace(name, "")
    except OSError:
        pass  # e.g. a name too long for the file system: the command line reports it
