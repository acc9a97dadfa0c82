"""Evaluation metrics of the tagging and classification tasks.

Entities follow the CoNLL evaluation (conlleval) for IOB labels: an entity is a maximal span
that starts at ``B-X``, or at an ``I-X`` that does not continue an entity of type X (after
``O``, at the start of a sentence, or after another type), and runs over the following
``I-X``. A predicted entity counts as correct only with exactly the same span and type as a
gold one. Precision, recall and F1 are micro-averaged over all entities, overall and per
type; F1 is 0 where precision and recall are both 0.

Classification (one label per example; letters ``N`` examples, ``K`` classes, labels are class
ids 0..K-1): accuracy, the confusion matrix, per-class precision, recall and F1, and their
macro average.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

_IOB = re.compile(r"([BI])-(.+)")
DIGITS = 6   # significant digits of probabilities and ratios in JSON output


def significant(x: float, digits: int = DIGITS) -> float:
    """``x`` rounded to ``digits`` significant digits (0.000123456789 -> 0.000123457): how
    the command line writes label probabilities and evaluation ratios (accuracy, precision,
    recall, F1) in JSON, so that small probabilities keep their figures."""
    return float(f"{x:.{digits}g}")


def is_iob(labels) -> bool:
    """True when every label is O, B-X or I-X, with at least one B- or I- label."""
    labels = list(labels)
    return any(_IOB.fullmatch(l) for l in labels) and all(
        l == "O" or _IOB.fullmatch(l) for l in labels)


def entities(labels: list[str]) -> list[tuple[str, int, int]]:
    """The entities of one sentence's IOB labels, as (type, start, end) with end exclusive:
    :func:`entity_spans` for one sentence."""
    labels = list(labels)
    if not labels:
        return []
    names = sorted(set(labels))
    index = {lab: i for i, lab in enumerate(names)}
    first = np.zeros(len(labels), bool)
    first[0] = True
    types, starts, ends = entity_spans(np.array([index[x] for x in labels]), first, names)
    return list(zip(types, starts.tolist(), ends.tolist()))


def entity_spans(ids: np.ndarray, first: np.ndarray,
                 labels: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The entities of many sentences at once, from label ids (CoNLL's convention).

    ids (N,): label ids of sentences laid end to end; first (N,): True at each sentence's
    first token; labels: the names of the ids. Returns the entities' types, starts and ends
    (exclusive), as positions in ``ids``. With whole-array operations instead of a loop over
    every token (tagging spent more time finding entities than in the output layer): a token
    continues the entity before it when it is I-X right after B-X or I-X in the same sentence;
    an entity starts at every B-X or I-X that does not continue one and ends where the next
    token does not continue it.
    """
    parts = [_IOB.fullmatch(lab) for lab in labels]
    types = sorted({m.group(2) for m in parts if m is not None})
    type_of = np.array([-1 if m is None else types.index(m.group(2)) for m in parts], np.intp)
    inside = np.array([m is not None and m.group(1) == "I" for m in parts], bool)
    t = type_of[ids]
    continues = inside[ids] & ~first
    continues[1:] &= t[1:] == t[:-1]
    continues[:1] = False
    starts = np.flatnonzero((t >= 0) & ~continues)
    stops = np.flatnonzero(np.append(~continues, True))
    ends = stops[np.searchsorted(stops, starts, side="right")]
    return [types[k] for k in t[starts]], starts, ends


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


# ------------------------------------------------------------ classification
def accuracy(gold: np.ndarray, pred: np.ndarray) -> float:
    """The fraction of examples whose predicted class is the gold one (0.0 for none)."""
    gold, pred = np.asarray(gold), np.asarray(pred)
    return float((gold == pred).mean()) if len(gold) else 0.0


def confusion_matrix(gold: np.ndarray, pred: np.ndarray, K: int) -> np.ndarray:
    """(K, K) counts: row = gold class, column = predicted class."""
    C = np.zeros((K, K), dtype=np.int64)
    np.add.at(C, (np.asarray(gold, dtype=np.intp), np.asarray(pred, dtype=np.intp)), 1)
    return C


def per_class_prf(C: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of every class from a confusion matrix C (K, K).

    precision_k = C[k,k] / Σ_g C[g,k], recall_k = C[k,k] / Σ_p C[k,p],
    F1 = 2 P R / (P + R); a ratio with a zero denominator counts as 0 (nothing predicted, or
    no gold example, earns no credit), the usual convention.
    """
    tp = np.diag(C).astype(np.float64)
    predicted = C.sum(axis=0).astype(np.float64)
    support = C.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        P = np.where(predicted > 0, tp / predicted, 0.0)
        R = np.where(support > 0, tp / support, 0.0)
        F = np.where(P + R > 0, 2 * P * R / (P + R), 0.0)
    return {"precision": P, "recall": R, "f1": F, "support": support.astype(np.int64)}


def macro_f1(C: np.ndarray) -> float:
    """The unweighted mean of the per-class F1 over the classes that occur (in gold or in
    predictions): a class absent from both would add a meaningless 0."""
    prf = per_class_prf(C)
    present = (C.sum(axis=0) + C.sum(axis=1)) > 0
    return float(prf["f1"][present].mean()) if present.any() else 0.0


def classification_report(gold: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict:
    """Everything ``charlm eval`` shows for a classifier, as plain JSON-ready values. Each
    class's counts have the names of the tagger's entity counts (:func:`prf`): ``gold`` (its
    examples, the support), ``predicted`` and ``correct``."""
    K = len(classes)
    C = confusion_matrix(gold, pred, K)
    prf = per_class_prf(C)
    predicted = C.sum(axis=0)
    return {
        "examples": int(len(gold)),
        "accuracy": accuracy(gold, pred),
        "macro_f1": macro_f1(C),
        "per_class": {c: {"precision": float(prf["precision"][k]),
                          "recall": float(prf["recall"][k]), "f1": float(prf["f1"][k]),
                          "gold": int(prf["support"][k]), "predicted": int(predicted[k]),
                          "correct": int(C[k, k])} for k, c in enumerate(classes)},
        "classes": list(classes),
        "confusion": C.tolist(),
    }
