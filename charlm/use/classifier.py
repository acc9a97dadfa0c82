"""A trained classifier, as the Python API and the command line use it.

    clf = charlm.load_model("models/classify.npz")
    label, distribution = clf.classify("There is nothing to like in this movie.")
    clf.evaluate("test.tsv")["accuracy"]

Letters: ``N`` texts, ``K`` classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..tasks import classify as task
from ..tasks.metrics import significant
from ..text.labelled import Examples, read_examples


@dataclass
class Prediction:
    """The class of one text: ``label`` with its ``probability``, and the ``distribution``,
    every class's probability (highest first). Unpacks as ``label, distribution``."""

    text: str
    label: str
    probability: float
    distribution: dict[str, float]

    @property
    def probabilities(self) -> dict[str, float]:
        """The older name of :attr:`distribution`."""
        return self.distribution

    def __iter__(self):
        return iter((self.label, self.distribution))

    def to_json(self) -> dict:
        """The JSON of ``charlm classify --json``: probabilities to 6 significant digits."""
        return {"text": self.text, "label": self.label,
                "probability": significant(self.probability),
                "distribution": {k: significant(p) for k, p in self.distribution.items()}}


class Classifier:
    """A model with ``task == "classify"`` and the operations the command line offers."""

    def __init__(self, model, train_meta: dict | None = None):
        self.model = model
        self.train_meta = train_meta or {}

    @property
    def labels(self) -> list[str]:
        return list(self.model.labels)

    @property
    def vocab(self):
        return self.model.vocab

    @property
    def config(self):
        return self.model.config

    def probabilities(self, texts: list[str], batch: int = 64) -> np.ndarray:
        """P(class | text): (N, K), columns in the order of :attr:`labels`."""
        return task.predict_texts(self.model, list(texts), batch)

    def classify(self, text: str) -> Prediction:
        """The likeliest class of ``text`` and every class's probability."""
        return self.classify_many([text])[0]

    def classify_many(self, texts, batch: int = 64) -> list[Prediction]:
        texts = list(texts)
        if not texts:
            return []
        P = self.probabilities(texts, batch)
        out = []
        for text, p in zip(texts, P):
            order = np.argsort(-p, kind="stable")
            probs = {self.labels[k]: float(p[k]) for k in order}
            out.append(Prediction(text, self.labels[order[0]], float(p[order[0]]), probs))
        return out

    def evaluate(self, data: str | Path | Examples, label_column: str = "auto",
                 encoding: str = "utf-8", batch: int = 64) -> dict:
        """Accuracy, macro-F1, per-class precision/recall/F1, the confusion matrix and the
        mean NLL on labelled examples: a file path (any format :mod:`charlm.text.labelled`
        reads) or :class:`~charlm.text.labelled.Examples`."""
        if isinstance(data, (str, Path)):
            data = read_examples([data], label_column=label_column, encoding=encoding,
                                 known_labels=self.labels)
        return task.evaluate_examples(self.model, data, batch)
