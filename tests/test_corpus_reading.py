"""Reading a corpus a chunk at a time gives exactly what tokenizing it sequence by sequence
gives: the same vocabulary (same order) and the same id stream."""

from collections import Counter

import numpy as np
import pytest

from charlm.text.bundled import bundled
from charlm.text.vocab import EOS_ID, UNK_ID, Vocab, sequence_chunks, split_sequences

SHAKESPEARE = bundled().read_text(encoding="utf-8")[:60000]
MIXED = ("The <unk> sat. On the mat!\nIt said \"no.\" Then (it) left.\n\n"
         "Numbers 3.5 and 1 @,@ 000 ; don't stop <unk>\nÜber café — naïve 😀\n") * 40


def reference(text, level, prose, max_size):
    """Token by token, sequence by sequence, with the plain tokenizer."""
    probe = Vocab(["<EOS>", "<UNK>"], level)
    counts = Counter()
    for seq in split_sequences(text, prose=prose, level=level):
        counts.update(probe.tokenize(seq))
    counts.pop("<unk>", None)
    ranked = sorted(counts, key=lambda t: (-counts[t], t))[: max_size - 2]
    vocab = Vocab(["<EOS>", "<UNK>", *ranked], level)
    ids = []
    for seq in split_sequences(text, prose=prose, level=level):
        ids += [UNK_ID if t == "<unk>" else vocab.index.get(t, UNK_ID)
                for t in vocab.tokenize(seq)]
        ids.append(EOS_ID)
    return vocab.tokens, np.array(ids)


@pytest.mark.parametrize("text", [SHAKESPEARE, MIXED], ids=["shakespeare", "mixed"])
@pytest.mark.parametrize("level", ["char", "word"])
@pytest.mark.parametrize("prose", [False, True])
def test_chunked_reading_equals_sequence_by_sequence(text, level, prose):
    max_size = 60
    tokens, ids = reference(text, level, prose, max_size)
    for size in (7, 1000, 1 << 20):   # chunks smaller than a line, a few lines, everything
        chunks = lambda: sequence_chunks(text, prose=prose, level=level, size=size)  # noqa
        vocab = Vocab.build_from_chunks(chunks(), level, max_size=max_size)
        assert vocab.tokens == tokens
        got = vocab.encode_chunks(chunks())
        assert got.dtype == np.uint8
        assert np.array_equal(got, ids)


def test_text_without_final_newline_still_ends_its_last_sequence():
    vocab = Vocab.build_from_chunks(sequence_chunks("ab\nc"), "char")
    ids = vocab.encode_chunks(sequence_chunks("ab\nc", size=2))
    assert vocab.decode(ids) == "ab\nc\n"
