"""Labelled lines: the data a classifier trains on and is evaluated with.

Formats read, one example per line (lines are split on ``"\\n"`` only: U+0085 and the other
Unicode line separators are ordinary characters inside a line, as real review files have them):

- ``LABEL<TAB>TEXT`` or ``TEXT<TAB>LABEL``: the label side is the column with fewer distinct
  values (or the one whose values are all known labels, when evaluating a trained model), or
  the side ``label_column`` names (``first`` / ``last``). A text may itself hold tabs: the label
  is split off at the first (label first) or the last (label last) tab;
- fastText's ``__label__X text``;
- one file per class (:func:`parse_class_file`): every line of the file is an example of it.

Blank (or whitespace-only) lines are skipped. Anything else that cannot be read is a
``CorpusError`` naming the file and the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError, CorpusError
from .files import read_text

FASTTEXT = "__label__"
LABEL_COLUMNS = ("auto", "first", "last")
INPUT_LABEL_COLUMNS = ("auto", "first", "last", "none")   # of lines to classify


@dataclass
class Examples:
    """N labelled texts: ``texts[i]`` has class ``labels[i]`` (a string); ``where[i]`` is
    "file:line" for error messages."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    where: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def extend(self, other: "Examples") -> None:
        self.texts += other.texts
        self.labels += other.labels
        self.where += other.where

    def subset(self, index) -> "Examples":
        return Examples([self.texts[i] for i in index], [self.labels[i] for i in index],
                        [self.where[i] for i in index])


# ------------------------------------------------------------------ reading
def _lines(text: str):
    """(line number, line) of every non-blank line, split on "\\n" only."""
    for k, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield k, line


def parse_labelled(text: str, name: str, label_column: str = "auto",
                   known_labels: list[str] | None = None) -> Examples:
    """The examples of one labelled file's text (see the module docstring for the formats)."""
    if label_column not in LABEL_COLUMNS:
        raise ConfigError(f"--label-column must be auto, first or last (got {label_column!r}).")
    lines = list(_lines(text))
    if not lines:
        raise CorpusError(f"{name} has no examples (it is empty or only whitespace). "
                          "Give a file with one labelled example per line.")
    if lines[0][1].lstrip().startswith(FASTTEXT):
        return _parse_fasttext(lines, name)
    rows = []
    for k, line in lines:
        if "\t" not in line:
            raise CorpusError(f"{name}, line {k}: no tab between a label and a text "
                              f"({_show(line)}). Write LABEL<TAB>TEXT, TEXT<TAB>LABEL or "
                              "__label__X text, one example per line.")
        rows.append((k, line))
    side = label_column if label_column != "auto" else _label_side(rows, name, known_labels)
    out = Examples()
    for k, line in rows:
        if side == "first":
            label, body = line.split("\t", 1)
        else:
            body, label = line.rsplit("\t", 1)
        label, body = label.strip(), body.strip()
        if not label:
            raise CorpusError(f"{name}, line {k}: the label is empty ({_show(line)}). "
                              "Give every example a label.")
        if not body:
            raise CorpusError(f"{name}, line {k}: the text is empty ({_show(line)}). "
                              "Give every example a text, or delete the line.")
        out.texts.append(body)
        out.labels.append(label)
        out.where.append(f"{name}:{k}")
    return out


def _label_side(rows, name: str, known: list[str] | None) -> str:
    """Which column of tab-separated rows holds the label: 'first' or 'last'."""
    first = [line.split("\t", 1)[0].strip() for _, line in rows]
    last = [line.rsplit("\t", 1)[1].strip() for _, line in rows]
    if known is not None:
        ok = [s for s, col in (("last", last), ("first", first)) if set(col) <= set(known)]
        if len(ok) == 1:
            return ok[0]
    n_first, n_last = len(set(first)), len(set(last))
    if n_first != n_last:
        return "first" if n_first < n_last else "last"
    # as many distinct values on both sides (a tiny file): labels are single words
    spaced = [any(any(c.isspace() for c in v) for v in col) for col in (first, last)]
    if spaced == [True, False]:
        return "last"
    if spaced == [False, True]:
        return "first"
    raise CorpusError(f"{name}: cannot tell which column holds the labels (both sides have "
                      f"{n_first} distinct values). Pass --label-column first or last.")


def _parse_fasttext(lines, name: str) -> Examples:
    out = Examples()
    for k, line in lines:
        words = line.split()
        if not words[0].startswith(FASTTEXT) or len(words[0]) == len(FASTTEXT):
            raise CorpusError(f"{name}, line {k}: expected {FASTTEXT}LABEL at the start, as on "
                              f"line {lines[0][0]} ({_show(line)}). Give every line its label.")
        if len(words) > 1 and words[1].startswith(FASTTEXT):
            raise CorpusError(f"{name}, line {k}: more than one label ({_show(line)}). charlm "
                              "classifies into one class per example; keep one label.")
        body = line.strip()[len(words[0]):].strip()
        if not body:
            raise CorpusError(f"{name}, line {k}: the text is empty ({_show(line)}). "
                              "Give every example a text, or delete the line.")
        out.texts.append(body)
        out.labels.append(words[0][len(FASTTEXT):])
        out.where.append(f"{name}:{k}")
    return out


def parse_class_file(text: str, name: str, label: str) -> Examples:
    """Every non-blank line of one class's file, as an example of ``label``."""
    out = Examples()
    for k, line in _lines(text):
        out.texts.append(line.strip())
        out.labels.append(label)
        out.where.append(f"{name}:{k}")
    if not out.texts:
        raise CorpusError(f"{name} (class {label}) has no examples: it is empty or only "
                          "whitespace. Give a file with one example per line.")
    return out


def parse_class_option(spec: str) -> tuple[str, str]:
    """``--class pos=FILE`` -> ("pos", "FILE")."""
    label, sep, path = spec.partition("=")
    if not sep or not label.strip() or not path:
        raise ConfigError(f"--class takes LABEL=FILE (got {spec!r}), e.g. --class pos=pos.txt.")
    return label.strip(), path


def read_examples(paths=(), classes=(), label_column: str = "auto", encoding: str = "utf-8",
                  known_labels: list[str] | None = None) -> Examples:
    """Examples from labelled files (``paths``) and from one-file-per-class pairs
    (``classes``: (label, path) or "label=path")."""
    out = Examples()
    for p in paths:
        out.extend(parse_labelled(read_text(p, encoding), str(p), label_column, known_labels))
    for spec in classes:
        label, p = parse_class_option(spec) if isinstance(spec, str) else spec
        out.extend(parse_class_file(read_text(p, encoding), str(p), label))
    if not len(out):
        raise CorpusError("No examples to read. Give a labelled file, or --class LABEL=FILE "
                          "for each class.")
    return out


# ------------------------------------------------- lines to classify, maybe labelled
def input_label_side(lines: list[str], known: list[str], label_column: str = "auto",
                     name: str = "the input") -> str | None:
    """Where the labels of lines to classify are, so that they are not read as text:
    ``"first"`` or ``"last"`` (a tab-separated column), ``"fasttext"`` (``__label__X text``),
    or None (plain text: each whole line is a text).

    ``label_column`` ``auto``: a labelled file is recognised by its labels: every non-blank
    line starts with ``__label__``, or has a tab with one of the model's classes (``known``)
    on the same side in every line; anything else is plain text. ``first`` / ``last``: that
    column, which every non-blank line must have; ``none``: plain text.
    """
    if label_column not in INPUT_LABEL_COLUMNS:
        raise ConfigError(f"--label-column must be auto, first, last or none (got "
                          f"{label_column!r}).")
    body = [(k, line) for k, line in enumerate(lines, start=1) if line.strip()]
    if label_column == "none" or not body:
        return None
    if label_column in ("first", "last"):
        for k, line in body:
            if "\t" not in line:
                raise CorpusError(f"{name}, line {k}: no tab before the label column "
                                  f"({_show(line)}). Write LABEL<TAB>TEXT or TEXT<TAB>LABEL, "
                                  "or drop --label-column.")
        return label_column
    if all(line.lstrip().startswith(FASTTEXT) for _, line in body):
        return "fasttext"
    if not all("\t" in line for _, line in body):
        return None
    known = set(known)
    if all(line.rsplit("\t", 1)[1].strip() in known for _, line in body):
        return "last"
    if all(line.split("\t", 1)[0].strip() in known for _, line in body):
        return "first"
    return None


def split_label(line: str, side: str | None) -> tuple[str, str | None]:
    """(text, label) of one line to classify, with the label where :func:`input_label_side`
    found it (None for a blank line or plain text)."""
    if side is None or not line.strip():
        return line, None
    if side == "fasttext":
        head = line.split()[0]
        return line.strip()[len(head):].strip(), head[len(FASTTEXT):]
    if side == "first":
        label, body = line.split("\t", 1)
    else:
        body, label = line.rsplit("\t", 1)
    return body.strip(), label.strip()


def _show(line: str, n: int = 40) -> str:
    return repr(line if len(line) <= n else line[:n] + "…")


# ------------------------------------------------------------ the label set
def label_set(labels: list[str]) -> list[str]:
    """The classes, sorted (numbers numerically: "2" before "10"), so ids do not depend on the
    order of the examples."""
    def key(s):
        try:
            return (0, float(s), s)
        except ValueError:
            return (1, 0.0, s)
    return sorted(set(labels), key=key)
