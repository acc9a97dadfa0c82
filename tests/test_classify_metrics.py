"""Classification metrics against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from charlm.tasks.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    macro_f1,
    per_class_prf,
)


def test_hand_computed_three_classes():
    # gold:  a a a b b c      pred: a b a b c c
    gold = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 1, 0, 1, 2, 2])
    assert accuracy(gold, pred) == pytest.approx(4 / 6)
    C = confusion_matrix(gold, pred, 3)
    assert C.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    prf = per_class_prf(C)
    # a: P 2/2, R 2/3, F 0.8;  b: P 1/2, R 1/2, F 1/2;  c: P 1/2, R 1/1, F 2/3
    assert prf["precision"].tolist() == pytest.approx([1.0, 0.5, 0.5])
    assert prf["recall"].tolist() == pytest.approx([2 / 3, 0.5, 1.0])
    assert prf["f1"].tolist() == pytest.approx([0.8, 0.5, 2 / 3])
    assert prf["support"].tolist() == [3, 2, 1]
    assert macro_f1(C) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_class_never_predicted_and_class_absent():
    # gold: x x y ; pred: x x x ; class z (id 2) occurs nowhere
    C = confusion_matrix([0, 0, 1], [0, 0, 0], 3)
    prf = per_class_prf(C)
    assert prf["precision"].tolist() == pytest.approx([2 / 3, 0.0, 0.0])
    assert prf["f1"][0] == pytest.approx(0.8) and prf["f1"][1] == 0.0
    assert macro_f1(C) == pytest.approx(0.4)     # mean over x and y only


def test_report_keys():
    r = classification_report(np.array([1, 0]), np.array([1, 1]), ["neg", "pos"])
    assert r["accuracy"] == 0.5 and r["confusion"] == [[0, 1], [0, 1]]
    # the counts have the tagger's names: gold (the support), predicted, correct
    assert r["per_class"]["pos"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3),
                                     "gold": 1, "predicted": 2, "correct": 1}
    assert r["per_class"]["neg"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                     "gold": 1, "predicted": 0, "correct": 0}
    assert r["macro_f1"] == pytest.approx(1 / 3)
