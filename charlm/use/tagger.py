"""A trained tagger with the operations the command line offers (``charlm tag``, ``charlm eval``).

    tagger = charlm.load_model("models/tag.npz")
    t = tagger.tag("Harry Potter and Hermione Granger invented a new spell")
    t.labels, t.probabilities, t.entities
    for typ, start, end, text in t.entities: ...     # or e.type, e.start, e.end, e.text
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..nn.encoder import length_mask
from ..tasks.metrics import entity_spans, is_iob, significant, tagging_scores
from ..tasks.sentences import pad
from ..tasks.tag import encode_tokens, predict, tag_log_probs
from ..text import conll


class Entity(NamedTuple):
    """An entity found in a sentence: its ``type`` (PER), the tokens ``start`` to ``end``
    (0-based, end exclusive: ``tokens[start:end]``) and their ``text``. A tuple, so
    ``typ, start, end, text = entity`` works too."""

    type: str
    start: int
    end: int
    text: str


@dataclass
class Tagged:
    """One tagged sentence: its tokens, a label per token with the probability the model
    gives it (``probabilities``), the full distribution over the labels (tokens × K) and the
    entities (:class:`Entity`) for IOB labels."""

    tokens: list[str]
    labels: list[str]
    probabilities: list[float]
    distribution: np.ndarray
    entities: list[Entity]

    @property
    def probs(self) -> list[float]:
        """The older name of :attr:`probabilities`."""
        return self.probabilities

    def entity_probability(self, e: Entity) -> float:
        """The lowest probability of the labels of an entity's tokens: how sure the model is
        of the whole span."""
        return min(self.probabilities[e.start:e.end])

    def to_json(self, label_names: list[str]) -> dict:
        """The JSON of ``charlm tag --json``: probabilities to 6 significant digits."""
        return {"tokens": self.tokens, "labels": self.labels,
                "probabilities": [significant(p) for p in self.probabilities],
                "distribution": [{k: significant(float(p)) for k, p in zip(label_names, row)}
                                 for row in self.distribution],
                "entities": [{"type": e.type, "start": e.start, "end": e.end, "text": e.text,
                              "probability": significant(self.entity_probability(e))}
                             for e in self.entities]}


class Tagger:
    """A tagging model: ``tag(text)``, ``tag_tokens(tokens)``, ``evaluate(conll_file)``."""

    def __init__(self, model, train_meta: dict | None = None):
        self.model = model
        self.train_meta = train_meta or {}
        self.iob = is_iob(model.labels)

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    @property
    def config(self):
        return self.model.config

    @property
    def vocab(self):
        return self.model.vocab

    def tag(self, text: str, whitespace: bool = False) -> Tagged:
        """Tokenize one sentence (as tweets and news are in CoNLL files, or on whitespace
        only) and tag it."""
        return self.tag_tokens(conll.tokenize(text, whitespace))

    def tag_many(self, texts, whitespace: bool = False, batch: int = 64) -> list[Tagged]:
        return self.tag_token_lists([conll.tokenize(t, whitespace) for t in texts], batch)

    def tag_tokens(self, tokens: list[str]) -> Tagged:
        return self.tag_token_lists([tokens])[0]

    def tag_token_lists(self, sentences: list[list[str]], batch: int = 64) -> list[Tagged]:
        """Tag tokenized sentences in batches of similar lengths.

        After the network, a batch's real tokens are laid end to end, sentence after sentence,
        and the probabilities, best labels, their probabilities and the entities are found for
        all of them at once; what is left per sentence is slicing. Done sentence by sentence
        and token by token in Python, that work took about 40 % of the time (the padding's
        probabilities, never shown, were computed too).
        """
        names = np.array(self.labels, dtype=object)
        out: list[Tagged | None] = [None] * len(sentences)
        order = np.argsort([len(s) for s in sentences], kind="stable")
        for s in range(0, len(order), batch):
            idx = [i for i in order[s:s + batch] if sentences[i]]
            for i in order[s:s + batch]:
                if not sentences[i]:
                    out[i] = Tagged([], [], [], np.zeros((0, len(self.labels))), [])
            if not idx:
                continue
            X, lengths = pad([encode_tokens(self.vocab, sentences[i]) for i in idx])
            f = self.model.features
            words = None if f is None else f.batch([sentences[i] for i in idx])
            lp = tag_log_probs(self.model, X, lengths, words)
            real = length_mask(lengths, X.shape[0], bool)[..., 0].T            # (m, T)
            p = np.exp(lp.transpose(1, 0, 2)[real]).astype(np.float64)        # (N, K)
            best = p.argmax(axis=1)
            labels = names[best].tolist()
            probs = p[np.arange(len(best)), best].tolist()
            ends = np.cumsum(lengths)
            starts = ends - lengths
            ents: list[list] = [[] for _ in idx]
            if self.iob:
                first = np.zeros(len(best), bool)
                first[starts] = True
                types, a, b = entity_spans(best, first, self.labels)
                js = np.searchsorted(ends, a, side="right")
                for typ, j, a, b in zip(types, js.tolist(), (a - starts[js]).tolist(),
                                        (b - starts[js]).tolist()):
                    ents[j].append(Entity(typ, a, b, " ".join(sentences[idx[j]][a:b])))
            for j, (i, a, b) in enumerate(zip(idx, starts.tolist(), ends.tolist())):
                out[i] = Tagged(list(sentences[i]), labels[a:b], probs[a:b], p[a:b], ents[j])
        return out

    def evaluate(self, path: str | Path | conll.Tagged, batch: int = 64) -> dict:
        """Token accuracy, the mean NLL per token (``nll``, nats) and entity P/R/F1 (micro,
        overall and per type) on a CoNLL file (or its sentences, :func:`conll.parse`)."""
        data = path if isinstance(path, conll.Tagged) else conll.read(path)
        conll.check_labels(data, self.labels)
        index = {lab: i for i, lab in enumerate(self.labels)}
        xs = [encode_tokens(self.vocab, s) for s in data.tokens]
        ys = [np.array([index[x] for x in s], np.int64) for s in data.labels]
        pred, nll, n = predict(self.model, xs, ys, batch, tokens=data.tokens)
        scores = tagging_scores(data.labels, [[self.labels[k] for k in p] for p in pred],
                                self.iob)
        scores["sentences"] = len(data)
        scores["nll"] = nll / n
        return scores
