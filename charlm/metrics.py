"""Evaluation metrics, computed from gold and predicted labels.

Classification (one label per example): accuracy, the confusion matrix, per-class precision,
recall and F1, and their macro average. Letters: ``N`` examples, ``K`` classes; labels are class
ids 0..K-1.
"""

from __future__ import annotations

import numpy as np


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
    """Everything ``charlm eval`` shows for a classifier, as plain JSON-ready values."""
    K = len(classes)
    C = confusion_matrix(gold, pred, K)
    prf = per_class_prf(C)
    return {
        "examples": int(len(gold)),
        "accuracy": accuracy(gold, pred),
        "macro_f1": macro_f1(C),
        "per_class": {c: {"precision": float(prf["precision"][k]),
                          "recall": float(prf["recall"][k]), "f1": float(prf["f1"][k]),
                          "support": int(prf["support"][k])} for k, c in enumerate(classes)},
        "classes": list(classes),
        "confusion": C.tolist(),
    }
