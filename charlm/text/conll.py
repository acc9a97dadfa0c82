"""CoNLL-style tagged text: one token per line, its label in the last whitespace-separated
column, a blank *or whitespace-only* line between sentences (real files have both).
``-DOCSTART-`` lines are document markers, not tokens, and are skipped.

Columns are split on tabs when a line has any (a token may then be empty or an unusual space,
as in real tweet corpora), else on whitespace. Errors are one line naming the file and the line:
a line with a token but no label, a binary file, bytes that are not UTF-8, labels in a
validation file that training never saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CorpusError
from .files import read_text


@dataclass
class Tagged:
    """Sentences of one file: ``tokens[i]`` and ``labels[i]`` are lists of equal length,
    ``lines[i]`` the line number of each sentence's first token (for messages)."""

    name: str
    tokens: list[list[str]] = field(default_factory=list)
    labels: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def n_tokens(self) -> int:
        return sum(len(s) for s in self.tokens)


def columns(line: str) -> list[str]:
    """A CoNLL line's columns. Tab-separated files may hold an empty or odd-space token
    ("\\tO" in BTC): split on tabs when there are any, else on any whitespace."""
    cols = [c.strip() for c in line.split("\t")] if "\t" in line else line.split()
    return [cols[0]] + [c for c in cols[1:] if c]


def parse_tokens(text: str, name: str) -> tuple[list[list[str]], list[list[str]] | None]:
    """The sentences of a CoNLL text to tag: each sentence's tokens (the first column) and,
    when every token line has a second column, their labels (the last column; None when any
    line has the token alone). ``-DOCSTART-`` lines are skipped."""
    tokens: list[list[str]] = []
    labels: list[list[str]] = []
    toks: list[str] = []
    labs: list[str] = []
    labelled = True
    for line in text.split("\n"):
        if not line.strip():
            if toks:
                tokens.append(toks), labels.append(labs)
                toks, labs = [], []
            continue
        cols = columns(line)
        if cols[0] == "-DOCSTART-":
            continue
        toks.append(cols[0])
        labs.append(cols[-1])
        labelled = labelled and len(cols) > 1
    if toks:
        tokens.append(toks), labels.append(labs)
    return tokens, labels if labelled and tokens else None


def has_labels_of(text: str, labels, sample: int = 2000) -> bool:
    """Whether ``text`` reads as CoNLL tagged with ``labels``: every non-blank line (of the
    first ``sample``) has two or more columns and ends in one of them ("RT O", "Harry
    B-PER"). A line of prose ends in a word, which is not a label."""
    known = set(labels)
    seen = 0
    for line in text.split("\n"):
        if not line.strip():
            continue
        cols = columns(line)
        if cols[0] == "-DOCSTART-":
            continue
        if len(cols) < 2 or cols[-1] not in known:
            return False
        seen += 1
        if seen >= sample:
            break
    return seen > 0


def looks_like_conll(text: str, sample: int = 2000) -> bool:
    """Whether ``text`` looks like CoNLL (for messages that say what a file is): of its first
    ``sample`` non-blank lines, nearly all are a token without spaces and further columns,
    the last columns take few values (labels, not words), and sentences are separated by
    blank lines once there are many lines. Labelled lines (``text<TAB>label``) have spaces
    in their text column; prose has many different last words."""
    lines = text.split("\n")
    body, blank = [], False
    for line in lines:
        if not line.strip():
            blank = blank or bool(body)
            continue
        body.append(line)
        if len(body) >= sample:
            break
    if not body:
        return False
    good, last = 0, set()
    for line in body:
        cols = columns(line)
        if len(cols) >= 2 and not any(c.isspace() for c in cols[0]) \
                and not cols[0].startswith("__label__"):
            good += 1
            last.add(cols[-1])
    n = len(body)
    return (good >= 0.95 * n and len(last) <= min(200, max(10, n // 3))
            and (blank or n < 100))


def parse(text: str, name: str) -> Tagged:
    """Sentences of a CoNLL text (already decoded)."""
    out = Tagged(name)
    toks: list[str] = []
    labs: list[str] = []
    start = 0
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():                          # blank or whitespace-only: a break
            if toks:
                out.tokens.append(toks), out.labels.append(labs), out.lines.append(start)
                toks, labs = [], []
            continue
        cols = columns(line)
        if cols[0] == "-DOCSTART-":
            continue
        if len(cols) < 2:
            raise CorpusError(f"{name} line {n}: {line.strip()[:40]!r} has a token but no "
                              "label. Each line must be `TOKEN LABEL` (label in the last "
                              "column), with a blank line between sentences.")
        if not toks:
            start = n
        toks.append(cols[0])
        labs.append(cols[-1])
    if toks:
        out.tokens.append(toks), out.labels.append(labs), out.lines.append(start)
    return out


def read(path: str | Path, encoding: str = "utf-8") -> Tagged:
    """A CoNLL file's sentences, or a CorpusError naming the file (and line)."""
    p = Path(path)
    if p.is_file():   # say where the binary part starts (read_text would say only the file)
        with open(p, "rb") as f:
            head = f.read(1 << 16)
        nul = head.find(b"\x00")
        if nul >= 0:
            line = head[:nul].count(b"\n") + 1
            raise CorpusError(f"{p} line {line}: a NUL byte; this looks "
                              "like a binary file, not CoNLL text. Give a text file with one "
                              "`TOKEN LABEL` per line.")
    tagged = parse(read_text(p, encoding), str(p))
    if not len(tagged):
        raise CorpusError(f"{p} holds no tagged sentences. Give a CoNLL file: one `TOKEN "
                          "LABEL` per line, a blank line between sentences.")
    return tagged


def check_labels(data: Tagged, labels: list[str]) -> None:
    """Every label of ``data`` must be one the model knows (from its training file)."""
    known = set(labels)
    for toks, labs, start in zip(data.tokens, data.labels, data.lines):
        for j, lab in enumerate(labs):
            if lab not in known:
                raise CorpusError(f"{data.name} line {start + j}: label {lab!r} never occurs "
                                  f"in the training data (labels: {', '.join(labels)}). Use "
                                  "data with the training file's label set.")


def label_list(data: Tagged) -> list[str]:
    """The label set of training data in a fixed order: ``O`` first, then by type and B before
    I (``B-LOC, I-LOC, B-PER, …``), other labels by string order."""
    seen = {lab for labs in data.labels for lab in labs}

    def key(lab: str):
        if lab == "O":
            return (0, "", "")
        m = re.fullmatch(r"([BI])-(.+)", lab)
        return (1, m.group(2), m.group(1)) if m else (2, lab, "")
    return sorted(seen, key=key)


# Raw text -> tokens, close to how tweets and news are tokenized in CoNLL files: URLs,
# @mentions and #hashtags whole, words with inner apostrophes or hyphens, numbers, and each
# other non-space character on its own.
_TOKEN_RE = re.compile(r"https?://\S+|[@#]\w+|\w+(?:['’\-]\w+)*|\S")


def tokenize(text: str, whitespace: bool = False) -> list[str]:
    """Split one sentence into tokens (``whitespace``: split on whitespace only)."""
    return text.split() if whitespace else _TOKEN_RE.findall(text)
