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

from ..errors import CharlmError
from ..tasks.metrics import classification_report
from ..tasks import classify as task


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
        return task.predict_proba(self.model, task.encode_texts(self.vocab, list(texts)), batch)

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
            data = task.read_examples([data], label_column=label_column, encoding=encoding,
                                      known_labels=self.labels)
        gold = task.label_ids(data.labels, self.labels, data.where)
        pred = self.probabilities(data.texts, batch).argmax(axis=1)
        return classification_report(gold, pred, self.labels)


# ------------------------------------------------------------------- training
class CrossValidationInterrupted(CharlmError):
    """Ctrl-C (or SIGTERM) during --folds: the command line exits 130, as for a run."""

    exit_code = 130


def prepare(train: "task.Examples", valid: "task.Examples | None", mcfg, tcfg,
            classes: list[str] | None = None):
    """A fresh classifier and its training task.

    ``valid`` None and ``tcfg.valid_fraction`` > 0: a seeded stratified part of ``train`` is
    held out for validation. The vocabulary comes from the training texts only (validation
    tokens outside it are ``<UNK>``). Returns (model, task).
    """
    from ..errors import CorpusError
    from ..nn.model import Model
    classes = classes or task.label_set(train.labels)
    if len(classes) < 2:
        raise CorpusError(f"The training data has only one class ({classes[0]!r}). A "
                          "classifier needs examples of at least two classes.")
    y = task.label_ids(train.labels, classes, train.where)
    if valid is None and tcfg.valid_fraction > 0:
        tr, va = task.stratified_split(y, tcfg.valid_fraction, tcfg.seed)
        train, valid, y = train.subset(tr), train.subset(va), y[tr]
    vocab = task.build_vocab(train.texts, tcfg.level, tcfg.min_count, tcfg.lowercase,
                             tcfg.vocab_size)
    if len(vocab) <= 2:
        raise CorpusError(f"No token of the training texts is kept in the vocabulary (each "
                          f"must occur --min-count {tcfg.min_count} times). Use more data or "
                          "a lower --min-count.")
    valid_part = None
    if valid is not None and len(valid):
        valid_part = (task.encode_texts(vocab, valid.texts),
                      task.label_ids(valid.labels, classes, valid.where))
    model = Model.create(mcfg, vocab, np.random.default_rng(tcfg.seed), labels=classes)
    t = task.ClassifyTask(task.encode_texts(vocab, train.texts), y, tcfg.batch, tcfg.seed,
                          valid_part, tcfg.eval_batch)
    return model, t


def cross_validate(examples: "task.Examples", folds: int, mcfg, tcfg, out: str | Path,
                   callback=None, should_stop=None, final: bool = True,
                   max_folds: int = 0) -> dict:
    """K-fold cross-validation, stratified and seeded, with the one trainer for every fold.

    Fold k trains on the other K-1 folds (a stratified ``valid_fraction`` of them held out to
    keep the best parameters by accuracy, as a run without --valid does) under the run's
    limits, and is then classified with those parameters. The result holds each fold's
    held-out accuracy, their mean and sample standard deviation, and the throughput; at the
    end a model is trained on all the examples (no validation part: the limits end it) and
    written to ``out`` (``final=False``: not; benchmarks). ``max_folds`` N > 0 runs only the
    first N folds of the K (benchmarks with a small budget). Fold models live in a temporary
    directory beside ``out``.
    """
    import statistics
    import tempfile
    import time
    from dataclasses import replace
    from ..training.trainer import Trainer
    out = Path(out)
    callback = callback or (lambda e: None)
    classes = task.label_set(examples.labels)
    y = task.label_ids(examples.labels, classes, examples.where)
    parts = task.stratified_folds(y, folds, tcfg.seed)
    rows = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.stem}.folds.", dir=out.parent) as tmp:
        for k, test in enumerate(parts[: max_folds or None], start=1):
            train = examples.subset(np.setdiff1d(np.arange(len(y)), test))
            model, t = prepare(train, None, mcfg, tcfg, classes)
            callback({"kind": "fold_start", "fold": k, "folds": folds,
                      "train": len(t.seqs), "valid": len(t.valid[0]) if t.valid else 0,
                      "test": len(test)})
            steps = {"seconds": 0.0, "examples": 0}

            def counting(e, steps=steps):   # pure training time: the steps, no validation
                if e.get("kind") == "step":
                    steps["seconds"] += e["seconds"]
                    steps["examples"] += e["tokens"]
                callback(e)

            trainer = Trainer(model, t, tcfg, Path(tmp) / f"fold{k}.npz", counting, should_stop)
            t0 = time.perf_counter()
            reason = trainer.run_loop()
            train_s = time.perf_counter() - t0
            if reason == "interrupted":
                raise CrossValidationInterrupted(
                    f"Cross-validation was interrupted in fold {k} of {folds}; nothing was "
                    "written. Run it again (it cannot be resumed).")
            best = type(model)(model.config, model.vocab, trainer.best_params, model.labels)
            clf = Classifier(best)
            t1 = time.perf_counter()
            report = clf.evaluate(examples.subset(test))
            classify_s = time.perf_counter() - t1
            row = {"fold": k, "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                   "test_examples": len(test), "steps": trainer.run.step,
                   "epochs": trainer.run.step / len(t.batches),
                   "best_valid_accuracy": trainer.run.best_valid, "stopped_by": reason,
                   "train_seconds": train_s,
                   "train_sent_per_s": steps["examples"] / max(steps["seconds"], 1e-9),
                   "classify_sent_per_s": len(test) / max(classify_s, 1e-9)}
            rows.append(row)
            callback({"kind": "fold", **row})
    accs = [r["accuracy"] for r in rows]
    summary = {"folds": folds, "examples": len(y), "classes": classes,
               "mean_accuracy": statistics.mean(accs),
               "sd_accuracy": statistics.stdev(accs) if len(accs) > 1 else 0.0,
               "train_sent_per_s": statistics.median(r["train_sent_per_s"] for r in rows),
               "classify_sent_per_s": statistics.median(r["classify_sent_per_s"] for r in rows),
               "per_fold": rows}
    if not final:
        return summary
    callback({"kind": "final_start", "examples": len(y)})
    model, t = prepare(examples, None, mcfg, replace(tcfg, valid_fraction=0.0), classes)
    reason = Trainer(model, t, replace(tcfg, valid_fraction=0.0), out, callback,
                     should_stop).run_loop()
    summary["final_model"] = str(out)
    summary["final_stopped_by"] = reason
    return summary


def train(files=(), out: str | Path = "models/classify.npz", valid=None, classes=(),
          label_column: str = "auto", encoding: str = "utf-8", folds: int = 0,
          callback=None, should_stop=None, **options):
    """Train a classifier on labelled files and/or one file per class (``classes``:
    "label=path" or (label, path)); options are ``charlm train``'s in snake_case. ``folds`` K
    runs K-fold cross-validation first (see :func:`cross_validate`; its summary is then in
    ``clf.cross_validation``). No file at all: the bundled review sentences. Returns the
    :class:`Classifier` written to ``out``."""
    from dataclasses import fields
    from ..errors import ConfigError
    from ..nn.model import ModelConfig
    from ..training.trainer import TrainConfig, Trainer
    from ..training import checkpoint
    files = [files] if isinstance(files, (str, Path)) else list(files)
    if not files and not classes:
        files = default_corpus()
    options["task"] = "classify"
    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)}
    unknown = set(options) - model_keys - train_keys
    if unknown:
        raise ConfigError(f"Unknown option(s): {', '.join(sorted(unknown))}.")
    mcfg = ModelConfig(**{k: v for k, v in options.items() if k in model_keys})
    tcfg = TrainConfig(**{k: v for k, v in options.items() if k in train_keys})
    mcfg.validate()
    tcfg.validate()
    examples = task.read_examples(files, classes, label_column, encoding)
    summary = None
    if folds:
        if valid is not None:
            raise ConfigError("--folds makes its own validation parts; drop --valid.")
        summary = cross_validate(examples, folds, mcfg, tcfg, out, callback, should_stop)
    else:
        valid_ex = (task.read_examples([valid], (), label_column, encoding,
                                       task.label_set(examples.labels))
                    if valid is not None else None)
        model, t = prepare(examples, valid_ex, mcfg, tcfg)
        Trainer(model, t, tcfg, Path(out), callback, should_stop).run_loop()
    model, meta, _ = checkpoint.load(out)
    clf = Classifier(model, meta)
    clf.cross_validation = summary
    return clf


def default_corpus() -> list[Path]:
    """The bundled UCI Sentiment Labelled Sentences (see corpora/README.md)."""
    from ..text.bundled import bundled
    return [bundled(n) for n in DEFAULT_FILES]


DEFAULT_FILES = ("amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt")
