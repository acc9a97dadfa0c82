"""Where the bundled corpora are.

In an installed wheel they are the package data ``charlm/corpora/*.txt`` (the checkout's
top-level ``corpora/`` folder, mapped there by ``pyproject.toml``); in an editable install from
a checkout they are read from that folder directly.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CorpusError

DEFAULT_CORPUS = "tinyshakespeare.txt"


def bundled(name: str = DEFAULT_CORPUS) -> Path:
    here = Path(__file__).resolve().parents[1]   # the charlm package
    for folder in (here / "corpora", here.parent / "corpora"):
        if (folder / name).is_file():
            return folder / name
    raise CorpusError(f"The bundled corpus {name} is missing from this installation. "
                      "Reinstall charlm, or give a corpus file.")
