"""Tokenizers and the vocabulary: text <-> token ids.

Two levels:

- ``char``: every character is a token.
- ``word``: words (with inner apostrophes, e.g. ``don't``), numbers and single punctuation marks
  are separate tokens.

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
from collections import Counter
from typing import Iterable, Iterator

import numpy as np

from .errors import ConfigError

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


class Vocab:
    """Token <-> id mapping for one level, with ``<EOS>`` = 0 and ``<UNK>`` = 1."""

    def __init__(self, tokens: list[str], level: str, lowercase: bool = False,
                 unk_token: str | None = "<unk>"):
        if level not in ("char", "word"):
            raise ConfigError(f"Unknown level {level!r}. Use 'char' or 'word'.")
        if tuple(tokens[:2]) != SPECIALS:
            raise ValueError("a vocabulary starts with <EOS>, <UNK>")
        self.tokens = list(tokens)
        self.level = level
        self.lowercase = lowercase
        self.unk_token = unk_token or None
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self._word_re = word_pattern(self.unk_token) if level == "word" else None
        if level == "char":
            # Sorted code points and their ids: encoding is one searchsorted over the text.
            chars = [(ord(t), i) for i, t in enumerate(self.tokens) if len(t) == 1]
            chars.sort()
            self._cps = np.array([c for c, _ in chars], dtype=np.uint32)
            self._cp_ids = np.array([i for _, i in chars], dtype=np.int64)

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
              unk_token: str | None = "<unk>") -> "Vocab":
        """Count tokens over ``sequences`` and keep the most frequent.

        ``max_size`` counts the two special tokens; tokens seen fewer than ``min_count`` times
        are left out. Order: frequency (descending), then the token itself.
        """
        if max_size is not None and max_size < 3:
            raise ConfigError(f"--vocab-size must be at least 3 (got {max_size}). "
                              "It counts <EOS> and <UNK> too.")
        if min_count < 1:
            raise ConfigError(f"--min-count must be at least 1 (got {min_count}).")
        counts: Counter = Counter()
        probe = cls([*SPECIALS], level, lowercase, unk_token)
        for seq in sequences:
            counts.update(probe.tokenize(seq))
        counts.pop(probe.unk_token, None)
        for s in SPECIALS:
            counts.pop(s, None)
        ranked = sorted((t for t, c in counts.items() if c >= min_count),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max_size - len(SPECIALS)]
        return cls([*SPECIALS, *ranked], level, lowercase, unk_token)

    # ------------------------------------------------------------- tokenizing
    def tokenize(self, text: str) -> list[str]:
        """Split one sequence (no line breaks) into token strings."""
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

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text``; a line break is ``<EOS>``. No ``<EOS>`` is appended."""
        if self.lowercase:
            text = text.lower()
        if self.level == "char" and not (self.unk_token and self.unk_token in text):
            return self._encode_chars(text)
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
        pos = np.searchsorted(self._cps, cps)
        pos_c = np.minimum(pos, max(len(self._cps) - 1, 0))
        known = (self._cps[pos_c] == cps) if len(self._cps) else np.zeros(len(cps), bool)
        ids = np.where(known, self._cp_ids[pos_c] if len(self._cps) else 0, UNK_ID)
        ids[cps == 10] = EOS_ID
        return ids.astype(self.dtype)

    def encode_sequences(self, sequences: Iterable[str]) -> np.ndarray:
        """One id stream: each sequence's tokens followed by ``<EOS>``."""
        parts = []
        for seq in sequences:
            parts.append(self.encode(seq))
            parts.append(np.array([EOS_ID], dtype=self.dtype))
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
        """Readable text: ``<EOS>`` becomes a line break; at word level punctuation attaches."""
        toks = [self.tokens[int(i)] for i in ids]
        if self.level == "char":
            return "".join("\n" if t == EOS else t for t in toks)
        out: list[str] = []
        prev = "\n"
        for t in toks:
            if t == EOS:
                out.append("\n")
                prev = "\n"
                continue
            if t in _WIKI_JOINERS:
                out.append(_WIKI_JOINERS[t])
                prev = "("  # glue the next token too
                continue
            if prev != "\n" and t not in _NO_SPACE_BEFORE and prev not in _NO_SPACE_AFTER:
                out.append(" ")
            out.append(t)
            prev = t
        return "".join(out)

    def to_json(self) -> dict:
        return {"level": self.level, "tokens": self.tokens, "lowercase": self.lowercase,
                "unk_token": self.unk_token}

    @classmethod
    def from_json(cls, d: dict) -> "Vocab":
        return cls(list(d["tokens"]), d["level"], bool(d.get("lowercase", False)),
                   d.get("unk_token"))
