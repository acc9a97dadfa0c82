"""Scoring: the probability of a sentence as a chain of conditional probabilities.

    P(y<1>, …, y<T>) = P(y<1>) · P(y<2> | y<1>) · … · P(<EOS> | y<1>, …, y<T>)

Each factor is read off the softmax at one step. Scoring starts as sampling does: ``a<0> = 0``
and the ``<EOS>`` token as the first input (see ``generate``), and the final ``<EOS>`` is
part of the sentence, so probabilities of all finished sequences sum to one.

Letters: ``T`` tokens in a sentence (plus one ``<EOS>``), ``m`` sentences in a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from ..nn.model import Model
from ..text.vocab import EOS_ID, UNK_ID


@dataclass
class Scored:
    text: str
    ids: np.ndarray        # (T + 1,) the targets: the sentence's tokens and <EOS>
    log_probs: np.ndarray  # (T + 1,) natural-log conditional probability of each target

    @property
    def log_prob(self) -> float:
        return float(self.log_probs.sum())

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def n_oov(self) -> int:
        return int((self.ids == UNK_ID).sum())

    @property
    def perplexity(self) -> float:
        return float(np.exp(-self.log_prob / self.n_tokens))


def batch_log_probs(model: Model, seqs: list[np.ndarray], output=None) -> list[np.ndarray]:
    """Per-target log-probabilities of several id sequences at once (each from a<0> = 0).

    The sequences are padded with ``<EOS>`` to the longest; padded positions are dropped.
    ``output``: ``model.output_layer()``, made once by a caller that scores many batches.
    """
    if not seqs:
        return []
    T = max(len(s) for s in seqs) + 1
    m = len(seqs)
    X = np.full((T, m), EOS_ID, dtype=np.int64)
    Y = np.full((T, m), EOS_ID, dtype=np.int64)
    for j, s in enumerate(seqs):
        X[1: len(s) + 1, j] = s
        Y[: len(s), j] = s
    # a model whose parameters overflow gives -inf/NaN log-probabilities, reported as such
    # (JSON null); numpy's warnings about them would only be noise
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        picked, _ = model.target_log_probs(X, Y, model.zero_state(m), output=output)
    return [picked[: len(s) + 1, j] for j, s in enumerate(seqs)]


def score(model: Model, text: str) -> Scored:
    return next(iter(score_many(model, [text])))


SORT_SPAN = 32
"""score_many sorts sentences by length within spans of SORT_SPAN batches."""


def score_many(model: Model, texts: Iterable[str], batch: int = 64,
               on_batch: Callable[[int], None] | None = None) -> Iterable[Scored]:
    """Score sentences ``batch`` at a time; yields the results in the input's order.

    Each batch is padded to its longest sentence, so sentences are sorted by length first,
    within spans of ``SORT_SPAN`` batches: batches of near-equal lengths waste little on
    padding, and results still come out span by span, not only at the end.
    """
    texts = list(texts)
    encoded = [model.vocab.encode(t).astype(np.int64) for t in texts]
    span = batch * SORT_SPAN
    output = model.output_layer()
    for s0 in range(0, len(texts), span):
        idx = range(s0, min(s0 + span, len(texts)))
        order = sorted(idx, key=lambda i: len(encoded[i]))
        found: dict[int, np.ndarray] = {}
        for a in range(0, len(order), batch):
            part = order[a: a + batch]
            found.update(zip(part, batch_log_probs(model, [encoded[i] for i in part], output)))
            if on_batch is not None:
                on_batch(len(part))
        for i in idx:
            yield Scored(texts[i], np.append(encoded[i], EOS_ID), found[i])
