"""The starter model: the language model that ships with charlm, for users with none of their
own yet (``charlm score``, ``sample``, ``pairs`` and ``eval`` fall back to it) and as a
starting point for fine-tuning (``charlm train FILE --init-from starter``).

It is a character-level LSTM of general English prose, trained by charlm on ten public-domain
books from Project Gutenberg (the recipe: ``bench/starter_model.py`` in the repository; the
books: ``corpora/README.md``). The file is an ordinary model file with its best parameters
only, stored as float16 (loading restores float32), and no training state; its meta names
its source (``charlm info --model starter`` shows it).

    lm = charlm.load_model("starter")
    lm.score("the apple and pear salad").log_prob
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..nn.model import Model
from ..training import checkpoint
from .language_model import LanguageModel

NAME = checkpoint.STARTER
# What a shipped file keeps of its run's record: the training options (the text options are
# needed to use it), the recorded corpus and the run's figures. The optimizer state, the
# latest parameters, the carried hidden state and the random generators' states are dropped.
KEPT = ("run", "config", "corpus", "corpus_tokens")


def path() -> Path:
    """The bundled file."""
    return checkpoint.starter_path()


def load() -> LanguageModel:
    """The starter model, as :func:`charlm.load_model` gives it."""
    model, meta, _ = checkpoint.load(path())
    return LanguageModel(model, meta)


def store(src: str | Path, dst: str | Path, source: dict, dtype: str = "float16") -> None:
    """Write a shippable copy of the model file ``src`` to ``dst``: its best parameters in
    ``dtype``, the record of its run without the training state, the recorded files named
    by their file names only, and ``source`` (where the text came from, its licence, the
    recipe) as the meta entry ``source``."""
    model, meta, _ = checkpoint.load(src)
    params = {k: v.astype(dtype) for k, v in model.params.items()}
    if not all(np.all(np.isfinite(v)) for v in params.values()):
        raise ValueError(f"{src} has parameters beyond the range of {dtype}")
    train = {k: meta[k] for k in KEPT if k in meta}
    corpus = train.get("corpus")
    if isinstance(corpus, dict):   # the paths of the machine it was trained on mean nothing
        files = [{**f, "path": Path(f["path"]).name} for f in corpus.get("files") or []]
        valid = corpus.get("valid")
        train["corpus"] = {**corpus, "files": files,
                           **({"valid": {**valid, "path": Path(valid["path"]).name}}
                              if isinstance(valid, dict) else {})}
    train["source"] = dict(source)
    shipped = Model(model.config, model.vocab, params, model.labels, model.features)
    checkpoint.save(dst, shipped, train)
