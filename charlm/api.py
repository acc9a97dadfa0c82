"""The Python API, mirroring the command line.

    import charlm
    lm = charlm.train(["corpus.txt"], out="models/char.npz", steps=2000, progress=True)
    lm = charlm.load_model("models/char.npz")
    print(lm.sample(seed=1))
    print(lm.score("the apple and pear salad").log_prob)
    tagger = charlm.train("train.conll", task="tag", valid="dev.conll", bidirectional=True)
    print(charlm.load_model("models/tag.npz").tag("Harry Potter met Hermione").entities)

``charlm train`` and :func:`train` share one implementation for every task,
:func:`charlm.training.runs.prepare_training`: the same default model path, the same refusal
to overwrite, the same resume, the same limits.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .training.folds import cross_validate_run
from .training.runs import keyword, nothing_trained, prepare_training
from .use.language_model import LanguageModel
from .use.load import load_model

__all__ = ["LanguageModel", "ProgressLines", "load_model", "train"]


def train(corpus=None, out: str | Path | None = None, valid: str | Path | None = None,
          callback=None, *, task: str = "lm", progress: bool = False, should_stop=None,
          **options):
    """Train a model on text files, as ``charlm train`` does (one implementation under both).

    ``corpus``: a path or a list of paths ('-' = standard input; None = the task's bundled
    corpus). ``out``: the model file (default ``models/<level>.npz``, or ``models/<task>.npz``
    for a tagger or classifier); an existing one is refused unless ``resume=True`` (continue
    it) or ``force=True`` (replace it, kept as .bak). Every other option is the command's
    option in snake_case: model shape (cell, layers, hidden, embed, dropout, …), text (level,
    tokenizer, prose, lowercase, encoding, …), run (lr, batch, bptt, steps, epochs, ``time``
    as "90s"/"10m" or ``time_budget`` in seconds, …), ``init_from``, ``init_scale``.
    ``progress=True`` prints a line to stderr at every evaluation; ``callback(event)``
    receives the trainer's events (plain dicts, see :mod:`charlm.training.trainer`). Returns
    the trained model (its best parameters), as :func:`load_model` gives it.

    ``task="tag"`` trains a tagger on a CoNLL file (no corpus: the bundled Broad Twitter
    Corpus; ``lm_features``, ``char_embed``, ``char_hidden``), ``task="classify"`` a
    classifier on labelled lines (``classes``: "label=path" or (label, path) for one file per
    class; ``label_column``; ``folds`` K runs K-fold cross-validation first, its summary then
    in the returned classifier's ``cross_validation``)."""
    callbacks = [c for c in (callback, ProgressLines(sys.stderr) if progress else None) if c]
    cb = (lambda e: [c(e) for c in callbacks]) if callbacks else None  # noqa: E731
    folds = options.pop("folds", 0)
    if folds:
        summary = cross_validate_run(corpus, folds=folds, task=task, out=out, valid=valid,
                                     callback=cb, should_stop=should_stop, spell=keyword,
                                     **options)
        model = load_model(summary["final_model"])
        model.cross_validation = summary
        return model
    trainer = prepare_training(corpus, task=task, out=out, valid=valid, callback=cb,
                               should_stop=should_stop, spell=keyword, **options)
    reason = trainer.run_loop()
    if reason == "nothing" and cb is not None:
        cb({"kind": "warning", "message": nothing_trained(trainer)})
    return load_model(trainer.out)


class ProgressLines:
    """Plain progress lines (no terminal control): the start, every evaluation, warnings.
    A classifier's figures are per example (its loss is one per text), the others' per
    token."""

    def __init__(self, stream):
        self.stream = stream
        self.unit = "token"

    def __call__(self, e: dict) -> None:
        k = e["kind"]
        if k == "start":
            self.unit = "example" if e.get("task") == "classify" else "token"
            line = (f"training: {e['params']:,} parameters, vocabulary {e['vocab']:,}, "
                    f"{e['tokens_per_epoch']:,} {self.unit}s per epoch")
        elif k == "eval":
            line = f"step {e['step']}  epoch {e['epoch']:.2f}  {self.unit}s {e['tokens']:,}"
            if e.get("train_loss") is not None:
                line += f"  train {e['train_loss']:.4f} nats/{self.unit}"
            if e.get("valid_loss") is not None:
                line += f"  valid {e['valid_loss']:.4f} nats/{self.unit}"
            if e.get("valid_accuracy") is not None:   # ratios in percent, as the CLI's
                line += f"  accuracy {100 * e['valid_accuracy']:.2f} %"
            if e.get("valid_f1") is not None:
                line += f"  entity F1 {100 * e['valid_f1']:.2f} %"
            if e.get("valid_macro_f1") is not None:
                line += f"  macro-F1 {100 * e['valid_macro_f1']:.2f} %"
        elif k in ("warning", "notice"):
            line = ("Warning: " if k == "warning" else "") + e["message"]
        else:
            return
        print(line, file=self.stream, flush=True)
