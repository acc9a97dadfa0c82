"""A trained classifier, as the Python API and the command line use it.

    clf = charlm.load_model("models/classify.npz")
    label, probabilities = clf.classify("There is nothing to like in this movie.")
    clf.evaluate("test.tsv")["accuracy"]

Letters: ``N`` texts, ``K`` classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..tasks import classify as task
from ..text.labelled import read_examples


@dataclass
class Prediction:
    """The class of one text: ``label`` with ``probability``, and every class's probability
    (highest first). Unpacks as ``label, probabilities``."""

    text: str
    label: str
    probability: float
    probabilities: dict[str, float]

    def __iter__(self):
        return iter((self.label, self.probabilities))

    def to_json(self) -> dict:
        return {"text": self.text, "label": self.label, "probability": self.probability,
                "probabilities": self.probabilities}


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

    def evaluate(self, data, label_column: str = "auto", encoding: str = "utf-8",
                 batch: int = 64) -> dict:
        """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix on
        labelled examples: a file path (any format :mod:`charlm.tasks.classify` reads) or
        :class:`~charlm.tasks.classify.Examples`."""
        if isinstance(data, (str, Path)):
            data = read_examples([data], label_column=label_column, encoding=encoding,
                                 known_labels=self.labels)
        return task.evaluate_examples(self.model, data, batch)
