"""Tokenizers and the vocabulary: text <-> token ids.

Two levels:

- ``char``: every character is a token.
- ``word``: with the ``words`` tokenizer (the default), words (with inner apostrophes, e.g.
  ``don't``), numbers and single punctuation marks are separate tokens; with the ``whitespace``
  tokenizer the tokens are exactly the whitespace-separated pieces of a line (for corpora that
  are distributed already tokenized, such as Penn Treebank and WikiText).

All text is brought to Unicode normal form NFC on the way in (``normalize = "NFC"``, recorded in
the model file), so a precomposed letter and the same letter typed with a combining accent are
one token. Vocabularies saved before this was recorded do not normalise.

Two special tokens are always present, with fixed ids: ``<EOS>`` (id 0) ends every sequence and
``<UNK>`` (id 1) stands for every token outside the vocabulary. A corpus's own unknown marker
(pre-processed corpora such as WikiText write ``<unk>``) is read as ``<UNK>``.

All other tokens are ordered by frequency in the training text, ties broken by the token's
string order, so two runs on the same corpus give the same ids.

At character level a line break in the text is the ``<EOS>`` token, so
``decode(encode(s)) == s`` for any text made of in-vocabulary characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Iterable, Iterator

import numpy as np

from ..errors import ConfigError

EOS = "<EOS>"
UNK = "<UNK>"
EOS_ID = 0
UNK_ID = 1
SPECIALS = (EOS, UNK)

# WikiText writes split numbers and hyphens as " @-@ ", " @,@ ", " @.@ ": one token each.
_WORD_RE_BODY = r"@[-,.]@|\d+(?:[.,]\d+)*|\w+(?:['’]\w+)*|[^\w\s]"
# Sentence ends for --prose at word level: . ! ? (with closing quotes/brackets) then space.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]])|(?<=[.!?][\"'”’)\]]{2}))"
                           r"\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_NO_SPACE_BEFORE = set(".,;:!?)]}%'’”…") | {"n't", "'s", "'re", "'ll", "'ve", "'d", "'m"}
_NO_SPACE_AFTER = set("([{$“‘")
_WIKI_JOINERS = {"@-@": "-", "@,@": ",", "@.@": "."}
# After an apostrophe glued to a word, these continue the word: game ' s -> game's.
_CLITICS = {"s", "t", "re", "ll", "ve", "d", "m", "S", "T", "RE", "LL", "VE", "D", "M"}
_QUOTES = {'"', "'", "’", "`"}
TOKENIZERS = ("words", "whitespace")
_WHITESPACE_RE = re.compile(r"[^\s]+|\n")


def nfc(text: str) -> str:
    """``text`` in Unicode normal form NFC (the same string when it already is)."""
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


class Joiner:
    """Word tokens -> readable text, one token at a time (so sampled text can be streamed).

    ``words`` tokenizer: punctuation attaches to the word before it, opening brackets and
    quotes to the word after; straight double quotes alternate between opening and closing;
    WikiText's ``@-@`` joiners glue both sides. A single quote after a word is held back until
    the next token shows what it is: an apostrophe before a clitic (``game ' s`` -> ``game's``),
    a closing quote or a plural possessive (``students ' books`` -> ``students' books``), or
    else an opening quote (``said ' yes`` -> ``said 'yes``). ``whitespace`` tokenizer: single
    spaces between tokens. ``<EOS>`` is a line break either way.
    """

    def __init__(self, tokenizer: str = "words"):
        self.tokenizer = tokenizer
        self.prev = "\n"          # the last token placed ("\n": a line start)
        self.glue = False         # the next token attaches without a space
        self.open: set[str] = set()   # quotes now open
        self.pending: str | None = None   # a single quote after a word, not yet placed

    def add(self, t: str) -> str:
        """The text that token ``t`` adds (with the space before it, if any)."""
        if self.tokenizer == "whitespace":
            return self._whitespace(t)
        out = ""
        if self.pending is not None:
            q, self.pending = self.pending, None
            if t in _CLITICS or t == EOS or t in _NO_SPACE_BEFORE or t in _QUOTES \
                    or t in _WIKI_JOINERS:
                self.prev, self.glue = q, t in _CLITICS   # apostrophe or closing quote
                out = q
            elif "'" in self.open:
                self.open.discard("'")
                self.prev, self.glue = q, False
                out = q
            elif self.prev[-1:] in ("s", "S"):
                self.prev, self.glue = q, False           # plural possessive
                out = q
            else:                                         # an opening quote
                self.open.add("'")
                self.prev, self.glue = q, True
                out = " " + q
        return out + self._place(t)

    def flush(self) -> str:
        """What is still held back at the end of the text."""
        q, self.pending = self.pending, None
        return q or ""

    def _whitespace(self, t: str) -> str:
        start = self.prev == "\n"
        self.prev = "\n" if t == EOS else t
        return "\n" if t == EOS else t if start else " " + t

    def _place(self, t: str) -> str:
        if t == EOS:
            self.prev, self.glue, self.open = "\n", False, set()
            return "\n"
        start = self.prev == "\n"
        if t in _WIKI_JOINERS:
            self.prev, self.glue = t, True
            return _WIKI_JOINERS[t]
        space = not (start or self.glue)
        glue_next = t in _NO_SPACE_AFTER
        if t in _QUOTES:
            key = "'" if t in ("'", "’") else t
            if key in self.open:                  # closing a quote opened before
                self.open.discard(key)
                space = False
            elif key == "'" and not start and not self.glue and self.prev[-1:].isalnum():
                self.pending = t                  # decided by the next token
                return ""
            else:                                 # opening quote
                self.open.add(key)
                glue_next = True
        elif t in _NO_SPACE_BEFORE:
            space = False
        self.prev, self.glue = t, glue_next
        return (" " + t) if space else t

    def feed(self, tokens: Iterable[str]) -> str:
        """The text of ``tokens`` (a held-back quote stays held: see :meth:`flush`)."""
        return "".join(self.add(t) for t in tokens)


def word_pattern(unk_token: str | None) -> re.Pattern:
    """The word tokenizer's regular expression, matching ``unk_token`` whole when given."""
    if unk_token:
        return re.compile(re.escape(unk_token) + "|" + _WORD_RE_BODY)
    return re.compile(_WORD_RE_BODY)


def split_sequences(text: str, *, prose: bool = False, level: str = "char") -> Iterator[str]:
    """Cut a corpus into the sequences that each end in ``<EOS>``.

    Default: one sequence per line (names lists, one sentence per line, dialogue); an empty line
    is an empty sequence. ``prose=True``: hard-wrapped lines are joined into paragraphs (blank
    lines separate paragraphs) and, at word level, paragraphs are split into sentences at their
    end punctuation, so a book trains on sentences rather than on line fragments.
    """
    if not prose:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # a final newline ends the last line; it does not start an empty one
        yield from lines
        return
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        if level == "word":
            yield from (s for s in _SENTENCE_END.split(para) if s)
        else:
            yield para


CHUNK_CHARS = 1 << 20   # a corpus is tokenized a megabyte at a time: bounded memory


def sequence_chunks(text: str, *, prose: bool = False, level: str = "char",
                    size: int = CHUNK_CHARS) -> Iterator[str]:
    """The corpus as pieces of about ``size`` characters in which every sequence ends with a
    line break (the line break is read as ``<EOS>``). In line mode these are slices of the text
    itself, so no per-line string is ever made."""
    if prose:
        yield from join_chunks(split_sequences(text, prose=True, level=level), size)
        return
    start = 0
    while start < len(text):
        cut = text.find("\n", min(start + size, len(text)) - 1)
        end = len(text) if cut < 0 else cut + 1
        piece = text[start:end]
        yield piece if piece.endswith("\n") else piece + "\n"
        start = end


def join_chunks(sequences: Iterable[str], size: int = CHUNK_CHARS) -> Iterator[str]:
    """Sequences joined into newline-terminated pieces of about ``size`` characters."""
    buf: list[str] = []
    n = 0
    for seq in sequences:
        buf.append(seq)
        n += len(seq) + 1
        if n >= size:
            yield "\n".join(buf) + "\n"
            buf, n = [], 0
    if buf:
        yield "\n".join(buf) + "\n"


class Vocab:
    """Token <-> id mapping for one level, with ``<EOS>`` = 0 and ``<UNK>`` = 1."""

    # How many distinct tokens of the training text were left out of the vocabulary, i.e. how
    # many types <UNK> stands for there (set by build; None when unknown: a vocabulary made by
    # hand, or a model file older than this field). A corpus's own unknown marker is not
    # counted: the types behind it are unknown too.
    unk_types: int | None = None

    def __init__(self, tokens: list[str], level: str, lowercase: bool = False,
                 unk_token: str | None = "<unk>", tokenizer: str = "words",
                 normalize: str | None = "NFC"):
        if level not in ("char", "word"):
            raise ConfigError(f"Unknown level {level!r}. Use 'char' or 'word'.")
        if tokenizer not in TOKENIZERS:
            raise ConfigError(f"Unknown tokenizer {tokenizer!r}. Use words or whitespace.")
        if normalize not in (None, "NFC"):
            raise ValueError(f"unknown normal form {normalize!r}")
        if tuple(tokens[:2]) != SPECIALS:
            raise ValueError("a vocabulary starts with <EOS>, <UNK>")
        self.tokens = list(tokens)
        self.level = level
        self.lowercase = lowercase
        self.unk_token = unk_token or None
        self.tokenizer = tokenizer
        self.normalize = normalize
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self._word_re = word_pattern(self.unk_token) if level == "word" else None
        if level == "word" and tokenizer == "whitespace":
            self._word_re = re.compile(r"[^\s]+")
        if level == "word":
            # Whole chunks are tokenized at once, line breaks included (they are <EOS>).
            self._stream_re = (_WHITESPACE_RE if tokenizer == "whitespace"
                               else re.compile(self._word_re.pattern + "|\n"))
            self._stream_index = dict(self.index)
            self._stream_index["\n"] = EOS_ID
            if self.unk_token:
                self._stream_index[self.unk_token] = UNK_ID
        else:
            # A table from code point to id: encoding is one gather over the text.
            cps = [(ord(t), i) for i, t in enumerate(self.tokens) if len(t) == 1]
            self._lut = np.full(max([c for c, _ in cps], default=0) + 1, UNK_ID, np.int64)
            for c, i in cps:
                self._lut[c] = i

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def dtype(self) -> type:
        """The smallest unsigned integer type that holds every id."""
        n = len(self.tokens)
        return np.uint8 if n <= 256 else np.uint16 if n <= 65536 else np.uint32

    # ----------------------------------------------------------------- building
    @classmethod
    def build(cls, sequences: Iterable[str], level: str, *, max_size: int | None = None,
              min_count: int = 1, lowercase: bool = False,
              unk_token: str | None = "<unk>", tokenizer: str = "words") -> "Vocab":
        """Count tokens over ``sequences`` and keep the most frequent.

        ``max_size`` counts the two special tokens; tokens seen fewer than ``min_count`` times
        are left out. Order: frequency (descending), then the token itself.
        """
        return cls.build_from_chunks(join_chunks(sequences), level, max_size=max_size,
                                     min_count=min_count, lowercase=lowercase,
                                     unk_token=unk_token, tokenizer=tokenizer)

    @classmethod
    def build_from_chunks(cls, chunks: Iterable[str], level: str, *,
                          max_size: int | None = None, min_count: int = 1,
                          lowercase: bool = False, unk_token: str | None = "<unk>",
                          tokenizer: str = "words") -> "Vocab":
        """:meth:`build` over newline-terminated pieces of a corpus (see
        :func:`sequence_chunks`)."""
        if max_size is not None and max_size < 3:
            raise ConfigError(f"--vocab-size must be at least 3 (got {max_size}). "
                              "It counts <EOS> and <UNK> too.")
        if min_count < 1:
            raise ConfigError(f"--min-count must be at least 1 (got {min_count}).")
        counts: Counter = Counter()
        probe = cls([*SPECIALS], level, lowercase, unk_token, tokenizer)
        for chunk in chunks:
            probe._count(chunk, counts)
        counts.pop("\n", None)
        counts.pop(probe.unk_token, None)
        for s in SPECIALS:
            counts.pop(s, None)
        ranked = sorted((t for t, c in counts.items() if c >= min_count),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max_size - len(SPECIALS)]
        vocab = cls([*SPECIALS, *ranked], level, lowercase, unk_token, tokenizer)
        vocab.unk_types = len(counts) - len(ranked)
        return vocab

    # ------------------------------------------------------------- tokenizing
    def prepare(self, text: str) -> str:
        """Text as this vocabulary reads it: in its normal form (NFC), when it records one."""
        return nfc(text) if self.normalize == "NFC" else text

    def tokenize(self, text: str) -> list[str]:
        """Split one sequence (no line breaks) into token strings."""
        text = self.prepare(text)
        if self.lowercase:
            text = text.lower()
        if self.level == "word":
            return self._word_re.findall(text)
        if self.unk_token and self.unk_token in text:
            out: list[str] = []
            for k, part in enumerate(text.split(self.unk_token)):
                if k:
                    out.append(self.unk_token)
                out.extend(part)
            return out
        return list(text)

    def _stream_tokens(self, chunk: str) -> list[str]:
        """Word tokens of a (lower-cased) chunk, with each line break as a token "\\n"."""
        return self._stream_re.findall(chunk)

    def _count(self, chunk: str, counts: Counter) -> None:
        """Add the token counts of one newline-terminated chunk (line breaks included)."""
        chunk = self.prepare(chunk)
        if self.lowercase:
            chunk = chunk.lower()
        if self.level == "word":
            counts.update(self._stream_tokens(chunk))
        elif self.unk_token and self.unk_token in chunk:
            for line in chunk.split("\n"):
                counts.update(self.tokenize(line))
        else:
            cps = np.frombuffer(chunk.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            hist = np.bincount(cps)
            for cp in np.flatnonzero(hist):
                counts[chr(cp)] += int(hist[cp])

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text``; a line break is ``<EOS>``. No ``<EOS>`` is appended."""
        text = self.prepare(text)
        if self.lowercase:
            text = text.lower()
        if self.level == "char" and not (self.unk_token and self.unk_token in text):
            return self._encode_chars(text)
        if self.level == "word":
            get = self._stream_index.get
            toks = self._stream_tokens(text)
            return np.fromiter((get(t, UNK_ID) for t in toks), dtype=self.dtype,
                               count=len(toks))
        ids: list[int] = []
        for k, line in enumerate(text.split("\n")):
            if k:
                ids.append(EOS_ID)
            get = self.index.get
            ids.extend(UNK_ID if t == self.unk_token else get(t, UNK_ID)
                       for t in self.tokenize(line))
        return np.array(ids, dtype=self.dtype)

    def _encode_chars(self, text: str) -> np.ndarray:
        # surrogatepass: a lone surrogate (undecodable bytes in argv) is one unknown character
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        lut = self._lut
        inside = cps < len(lut)
        ids = np.where(inside, lut[np.where(inside, cps, 0)], UNK_ID)
        ids[cps == 10] = EOS_ID
        return ids.astype(self.dtype)

    def encode_sequences(self, sequences: Iterable[str]) -> np.ndarray:
        """One id stream: each sequence's tokens followed by ``<EOS>``."""
        return self.encode_chunks(join_chunks(sequences))

    def encode_chunks(self, chunks: Iterable[str]) -> np.ndarray:
        """The id stream of newline-terminated pieces (see :func:`sequence_chunks`)."""
        parts = [self.encode(chunk) for chunk in chunks]
        if not parts:
            return np.zeros(0, dtype=self.dtype)
        return np.concatenate(parts)

    def oov_tokens(self, text: str) -> list[str]:
        """The tokens of ``text`` that are outside the vocabulary (in order, repeats kept)."""
        out = []
        for line in text.split("\n"):
            out.extend(t for t in self.tokenize(line) if t not in self.index or t in SPECIALS)
        return out

    # --------------------------------------------------------------- decoding
    def decode(self, ids: Iterable[int]) -> str:
        """Readable text: ``<EOS>`` becomes a line break; at word level the tokens are joined
        as the tokenizer that made them splits text (see :class:`Joiner`)."""
        toks = [self.tokens[int(i)] for i in ids]
        if self.level == "char":
            return "".join("\n" if t == EOS else t for t in toks)
        j = Joiner(self.tokenizer)
        return j.feed(toks) + j.flush()

    def joiner(self, prime: str | None = None) -> "Joiner | None":
        """A :class:`Joiner` that has seen ``prime``'s tokens, so that a continuation joins
        onto the prime as the words of one text join (None at character level: no spaces to
        decide)."""
        if self.level == "char":
            return None
        j = Joiner(self.tokenizer)
        for k, line in enumerate((prime or "").split("\n")):
            if k:
                j.add(EOS)
            j.feed(self.tokenize(line))
        return j

    def continue_text(self, prime: str | None, ids: Iterable[int]) -> str:
        """``prime`` as given, followed by the tokens ``ids`` joined onto it."""
        toks = [self.tokens[int(i)] for i in ids]
        j = self.joiner(prime)
        if j is None:
            return (prime or "") + "".join("\n" if t == EOS else t for t in toks)
        return (prime or "") + j.feed(toks) + j.flush()

    def to_json(self) -> dict:
        return {"level": self.level, "tokens": self.tokens, "lowercase": self.lowercase,
                "unk_token": self.unk_token, "tokenizer": self.tokenizer,
                "normalize": self.normalize, "unk_types": self.unk_types}

    @classmethod
    def from_json(cls, d: dict) -> "Vocab":
        # files written before the tokenizer and the normal form were recorded: words, none;
        # before unk_types: unknown
        vocab = cls(list(d["tokens"]), d["level"], bool(d.get("lowercase", False)),
                    d.get("unk_token"), d.get("tokenizer", "words"), d.get("normalize"))
        vocab.unk_types = d.get("unk_types")
        return vocab


def reverse_lines(text: str) -> str:
    """Every line's characters in reverse order; the lines stay where they are."""
    return "\n".join(line[::-1] for line in text.split("\n"))
