"""`charlm sample` streams tokens as they are drawn; the streamed text must be exactly what
decoding the whole sample at once gives."""

import io
import random
import sys

import pytest

from charlm.cli.use_cmds import TextStream
from charlm.text.vocab import Vocab

WORDS = ["<EOS>", "<UNK>", "hello", ",", "world", ".", "(", "x", ")", "@-@", "3", "don't",
         '"', "“", "‘", "!", "$"]


@pytest.mark.parametrize("level, tokens", [("word", WORDS),
                                           ("char", ["<EOS>", "<UNK>", *"ab c.,\t"])])
def test_streamed_text_equals_decoded_text(level, tokens, monkeypatch):
    vocab = Vocab(tokens, level)
    rnd = random.Random(0)
    for _ in range(200):
        ids = [rnd.randrange(len(tokens)) for _ in range(rnd.randrange(1, 20))]
        buf = io.StringIO()
        monkeypatch.setattr(sys, "stdout", buf)
        stream = TextStream(vocab)
        for t in ids:
            stream(t)
        monkeypatch.undo()
        assert buf.getvalue() == vocab.decode(ids)
