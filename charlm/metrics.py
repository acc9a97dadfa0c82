"""Evaluation metrics of the tagging and classification tasks.

Entities follow the CoNLL evaluation (conlleval) for IOB labels: an entity is a maximal span
that starts at ``B-X``, or at an ``I-X`` that does not continue an entity of type X (after
``O``, at the start of a sentence, or after another type), and runs over the following
``I-X``. A predicted entity counts as correct only with exactly the same span and type as a
gold one. Precision, recall and F1 are micro-averaged over all entities, overall and per
type; F1 is 0 where precision and recall are both 0.
"""

from __future__ import annotations

import re
from collections import Counter

_IOB = re.compile(r"([BI])-(.+)")


def is_iob(labels) -> bool:
    """True when every label is O, B-X or I-X, with at least one B- or I- label."""
    labels = list(labels)
    return any(_IOB.fullmatch(l) for l in labels) and all(
        l == "O" or _IOB.fullmatch(l) for l in labels)


def entities(labels: list[str]) -> list[tuple[str, int, int]]:
    """The entities of one sentence's IOB labels, as (type, start, end) with end exclusive."""
    out = []
    typ, start = None, 0
    for i, lab in enumerate(list(labels) + ["O"]):
        m = _IOB.fullmatch(lab)
        continues = m is not None and m.group(1) == "I" and m.group(2) == typ
        if typ is not None and not continues:
            out.append((typ, start, i))
            typ = None
        if m is not None and not continues:
            typ, start = m.group(2), i
    return out


def prf(tp: int, n_pred: int, n_gold: int) -> dict:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "predicted": n_pred, "gold": n_gold,
            "correct": tp}


def tagging_scores(gold: list[list[str]], pred: list[list[str]],
                   iob: bool | None = None) -> dict:
    """Token accuracy and (for IOB labels) entity P/R/F1, micro overall and per type.

    gold, pred: label lists per sentence, of equal lengths. ``iob``: whether the label set is
    IOB (None: decided from the labels seen here).
    """
    right = total = 0
    tp: Counter = Counter()
    n_pred: Counter = Counter()
    n_gold: Counter = Counter()
    for g, p in zip(gold, pred):
        if len(g) != len(p):
            raise ValueError("gold and predicted sentences differ in length")
        right += sum(a == b for a, b in zip(g, p))
        total += len(g)
        ge, pe = set(entities(g)), set(entities(p))
        for e in ge:
            n_gold[e[0]] += 1
        for e in pe:
            n_pred[e[0]] += 1
        for e in ge & pe:
            tp[e[0]] += 1
    out = {"tokens": total, "accuracy": right / total if total else 0.0}
    if iob is None:
        iob = is_iob({l for s in gold for l in s} | {l for s in pred for l in s})
    if iob:
        out["entities"] = prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
        out["per_type"] = {t: prf(tp[t], n_pred[t], n_gold[t])
                           for t in sorted(set(n_gold) | set(n_pred))}
    return out
