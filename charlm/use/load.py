"""Loading a model file as the object of its task."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelFileError
from ..training import checkpoint
from .classifier import Classifier
from .language_model import LanguageModel
from .tagger import Tagger

# The object load_model returns for each task: each is made as ``cls(model, train_meta)``.
TASK_OBJECTS = {"lm": LanguageModel, "tag": Tagger, "classify": Classifier}


def load_model(path: str | Path):
    """The model in a file, as the object of its task: a LanguageModel (``.sample``,
    ``.score``), a Tagger (``.tag``) or a Classifier (``.classify``). The name ``starter``
    loads the starter model that ships with charlm (see :mod:`charlm.use.starter`)."""
    model, meta, _ = checkpoint.load(path)
    cls = TASK_OBJECTS.get(model.config.task)
    if cls is None:
        raise ModelFileError(f"{path} holds a {model.config.task} model, which this charlm "
                             "cannot use. Upgrade charlm.") from None
    return cls(model, meta)
