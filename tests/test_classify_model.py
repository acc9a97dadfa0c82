"""The classifier (embedding -> layers -> pooling -> softmax): float64 gradient checks through
the masks and the pooling, padding that changes nothing, and training through the one trainer
(learning, best-by-accuracy, exact resume)."""

from __future__ import annotations

import numpy as np
import pytest

from charlm.nn.model import Model, ModelConfig
from charlm.tasks import classify as C
from charlm.tasks.sentences import pad
from charlm.text.labelled import Examples
from charlm.use.gradcheck import TOLERANCE, numerical_grad, rel_error, tiny_vocab

SEQS = [np.array(s) for s in ([2, 3, 4, 5], [6, 2], [3], [4, 4, 6])]
Y = np.array([0, 2, 1, 2])


def make(cell="lstm", pool="last", bidirectional=True, layers=1, hidden=3, opts=None,
         dropout=0.0, seed=0):
    cfg = ModelConfig(cell=cell, layers=layers, hidden=hidden, embed=3, dropout=dropout,
                      dtype="float64", task="classify", bidirectional=bidirectional,
                      pool=pool, **(opts or {}))
    return Model.create(cfg, tiny_vocab(7), np.random.default_rng(seed), labels=["a", "b", "c"])


def check_all_grads(model, seqs, y):
    X, lengths = pad(seqs)
    L, _, _, cache = C.loss(model, X, lengths, y)
    grads = C.backward(model, cache)
    assert set(grads) == set(model.params)
    f = lambda: C.loss(model, X, lengths, y)[0]  # noqa: E731
    bad = {}
    for k, w in model.params.items():
        err = rel_error(grads[k], numerical_grad(f, w))
        if not err < TOLERANCE:
            bad[k] = err
    assert not bad, f"relative errors over {TOLERANCE}: {bad}"


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("pool", ["last", "mean", "max"])
def test_gradients_through_pooling_and_masks(pool, bidirectional):
    check_all_grads(make(pool=pool, bidirectional=bidirectional), SEQS, Y)


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_gradients_through_input_dropout(pool):
    """A bidirectional classifier with dropout on its input and between its layers: one
    seeded set of masks makes the loss a function of the parameters, checked numerically
    (the input's mask is shared by both directions, so both add into the embedding's
    gradient through it)."""
    model = make(pool=pool, layers=2, dropout=0.3, opts={"input_dropout": 0.4})
    X, lengths = pad(SEQS)
    f = lambda: C.loss(model, X, lengths, Y, np.random.default_rng(5))[0]  # noqa: E731
    grads = C.backward(model, C.loss(model, X, lengths, Y, np.random.default_rng(5))[3])
    assert abs(f() - C.loss(model, X, lengths, Y)[0]) > 1e-3      # the masks are on
    for k, w in model.params.items():
        assert rel_error(grads[k], numerical_grad(f, w)) < TOLERANCE, k


@pytest.mark.parametrize("cell, opts", [("rnn", {}), ("gru", {}), ("lstm", {"peephole": True})],
                         ids=["rnn", "gru", "lstm-peephole"])
def test_gradients_other_cells_two_layers(cell, opts):
    check_all_grads(make(cell=cell, opts=opts, layers=2, hidden=2), SEQS, Y)


@pytest.mark.parametrize("pool", ["last", "mean", "max"])
def test_padding_changes_nothing(pool):
    """Each example's logits and gradients are those of the example alone, to round-off."""
    model = make(pool=pool, layers=2)
    X, lengths = pad(SEQS)
    X[X == 0] = 5                       # the padding's ids must not matter either
    for i, (t, n) in enumerate(zip(range(X.shape[1]), lengths)):
        X[n:, i] = 5 + i % 2
    L, _, logits, cache = C.loss(model, X, lengths, Y)
    g_batch = C.backward(model, cache)
    summed = {k: np.zeros_like(v) for k, v in model.params.items()}
    for i, s in enumerate(SEQS):
        Li, _, logit_i, ci = C.loss(model, s[:, None], np.array([len(s)]), Y[i:i + 1])
        np.testing.assert_allclose(logits[i], logit_i[0], rtol=1e-12, atol=1e-14)
        for k, v in C.backward(model, ci).items():
            summed[k] += v
    for k, v in g_batch.items():      # L is averaged over the batch: m · ∇L = Σ_i ∇L_i
        np.testing.assert_allclose(v * len(SEQS), summed[k], rtol=1e-10, atol=1e-13,
                                   err_msg=k)


def test_predict_proba_order_and_batching():
    model = make()
    P1 = C.predict_proba(model, SEQS, m=1)
    P3 = C.predict_proba(model, SEQS, m=3)
    np.testing.assert_allclose(P1, P3, rtol=1e-12)
    np.testing.assert_allclose(P1.sum(axis=1), 1.0)
    X, lengths = pad([SEQS[2]])
    logits, _ = C.forward(model, X, lengths)
    z = np.exp(logits[0] - logits[0].max())
    np.testing.assert_allclose(P1[2], z / z.sum(), rtol=1e-12)


# ------------------------------------------------------------- with the trainer
def toy_examples(n=120, seed=0):
    """Texts whose class is the word that starts them, padded with noise words."""
    rng = np.random.default_rng(seed)
    words = ["w%d" % i for i in range(8)]
    texts, labels = [], []
    for i in range(n):
        lab = ["good", "bad"][i % 2]
        noise = " ".join(rng.choice(words, rng.integers(1, 6)))
        texts.append(f"{lab} {noise}")
        labels.append(lab)
    return Examples(texts, labels, [f"toy:{i + 1}" for i in range(n)])


def toy_configs(**train):
    from charlm.training.trainer import TrainConfig
    mcfg = ModelConfig(cell="lstm", layers=1, hidden=8, embed=8, dropout=0.0,
                       task="classify", bidirectional=True)
    tcfg = TrainConfig(level="word", batch=8, lr=0.02, eval_every=10, **train)
    return mcfg, tcfg


def test_trainer_learns_and_keeps_best_by_accuracy(tmp_path):
    import charlm
    from charlm.tasks.classify import prepare
    from charlm.training.trainer import Trainer
    mcfg, tcfg = toy_configs(steps=60, valid_fraction=0.25)
    model, task = prepare(toy_examples(), None, mcfg, tcfg)
    assert len(task.valid[1]) == 30 and task.metric == "valid_accuracy"
    trainer = Trainer(model, task, tcfg, tmp_path / "c.npz")
    trainer.run_loop()
    accs = [r["valid_accuracy"] for r in trainer.run.history]
    assert trainer.run.best_valid == max(accs) == 1.0
    clf = charlm.load_model(tmp_path / "c.npz")
    label, probs = clf.classify("good w1 w2")
    assert label == "good" and probs["good"] > 0.5 and set(probs) == {"bad", "good"}
    assert clf.classify_many(["bad w3", "good"])[0].label == "bad"


def test_resume_is_exact(tmp_path):
    from charlm.tasks.classify import prepare
    from charlm.training import checkpoint
    from charlm.training.trainer import Trainer
    mcfg, tcfg = toy_configs(steps=25, valid_fraction=0.25)
    mcfg.dropout = 0.3                           # the dropout rng must resume too
    model, task = prepare(toy_examples(), None, mcfg, tcfg)
    Trainer(model, task, tcfg, tmp_path / "a.npz").run_loop()
    mcfg2, tcfg2 = toy_configs(steps=12, valid_fraction=0.25)
    mcfg2.dropout = 0.3
    model, task = prepare(toy_examples(), None, mcfg2, tcfg2)
    Trainer(model, task, tcfg2, tmp_path / "b.npz").run_loop()
    _, meta, arrays = checkpoint.load(tmp_path / "b.npz")
    model, task = prepare(toy_examples(), None, mcfg2, tcfg2)
    tcfg2.steps = 25
    trainer = Trainer(model, task, tcfg2, tmp_path / "b.npz")
    trainer.restore(meta, arrays)
    trainer.run_loop()
    a, b = (checkpoint.load(tmp_path / f"{n}.npz")[2] for n in "ab")
    for k in a:
        if k.startswith("train/param/"):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_cross_validation_folds_and_final_model(tmp_path):
    import statistics

    from charlm.training import checkpoint
    from charlm.training.folds import cross_validate
    mcfg, tcfg = toy_configs(steps=30, valid_fraction=0.2)
    events = []
    ex = toy_examples(60)
    s = cross_validate(ex, 3, mcfg, tcfg, tmp_path / "cv.npz", events.append)
    rows = s["per_fold"]
    assert [r["fold"] for r in rows] == [1, 2, 3]
    assert sum(r["test_examples"] for r in rows) == 60
    accs = [r["accuracy"] for r in rows]
    assert s["mean_accuracy"] == pytest.approx(statistics.mean(accs))
    assert s["sd_accuracy"] == pytest.approx(statistics.stdev(accs))
    assert min(accs) > 0.8                      # the toy task is easy to learn in 30 steps
    starts = [e for e in events if e["kind"] == "fold_start"]
    assert [e["train"] + e["valid"] + e["test"] for e in starts] == [60, 60, 60]
    model, meta, _ = checkpoint.load(tmp_path / "cv.npz")    # the model on all the data
    assert meta["corpus_tokens"] == sum(len(t.split()) for t in ex.texts)
    assert meta["run"]["step"] == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cv.log.jsonl", "cv.npz"]


def test_interrupted_cross_validation_writes_nothing(tmp_path):
    from charlm.training.folds import CrossValidationInterrupted, cross_validate
    mcfg, tcfg = toy_configs(steps=5, valid_fraction=0.2)
    with pytest.raises(CrossValidationInterrupted, match="fold 1 of 3") as e:
        cross_validate(toy_examples(30), 3, mcfg, tcfg, tmp_path / "cv.npz",
                       should_stop=lambda: True)
    assert e.value.exit_code == 130 and list(tmp_path.iterdir()) == []
