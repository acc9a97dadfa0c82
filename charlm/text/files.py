"""Reading text files: encodings, binary files, line ends, standard input, and the record
(path, size, SHA-256) that lets a resumed run read its corpus again and notice a change."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, CorpusError


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """A text file's contents, with errors a user can act on."""
    p = Path(path)
    if not p.exists():
        raise CorpusError(f"No such file: {p}. Check the path.")
    if p.is_dir():
        raise CorpusError(f"{p} is a directory. Give a text file (or several).")
    return decode_text(p.read_bytes(), str(p), encoding)


def decode_text(data: bytes, name: str, encoding: str = "utf-8") -> str:
    """Bytes read from ``name`` (a file, standard input) as text, or a CorpusError."""
    if b"\x00" in data[:65536]:
        raise CorpusError(f"{name} looks like a binary file (it contains NUL bytes). "
                          "Give a plain text file.")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CorpusError(f"{name} is not valid {encoding}: byte {e.start} (line {line}) cannot "
                          "be decoded. Pass its encoding with --encoding, e.g. "
                          "--encoding latin-1.") from None
    except LookupError:
        raise ConfigError(f"Unknown encoding {encoding!r}. Use a Python codec name such as "
                          "utf-8 or latin-1.") from None
    return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")


def read_corpus_file(path: str | Path, encoding: str) -> tuple[str, dict]:
    """A corpus file's text and its record: absolute path ('-' for stdin), bytes, sha256."""
    if str(path) == "-":
        buf = getattr(sys.stdin, "buffer", None)
        data = buf.read() if buf is not None else sys.stdin.read().encode("utf-8")
        text, name = decode_text(data, "standard input", encoding), "-"
    else:
        p = Path(path)
        text = read_text(p, encoding)
        data, name = p.read_bytes(), str(p.resolve())
    return text, {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@dataclass
class Sources:
    """A run's data as read from its files, before a task parses it: the training files'
    (name, text), the validation file's, and one-file-per-class files' (label, name, text)."""

    files: list[tuple[str, str]] = field(default_factory=list)
    valid: tuple[str, str] | None = None
    classes: list[tuple[str, str, str]] = field(default_factory=list)
