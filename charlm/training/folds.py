"""K-fold cross-validation of a classifier (``charlm train --task classify --folds K``): the
one trainer run once per fold, then once more on all the data for the model file."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import CharlmError, ConfigError
from ..tasks import classify
from ..text.labelled import Examples, label_set
from .runs import check_writable, plan_training, set_aside, start_encoder, uniform_init
from .trainer import Trainer


class CrossValidationInterrupted(CharlmError):
    """Ctrl-C (or SIGTERM) during --folds: the command line exits 130, as for a run."""

    exit_code = 130


def cross_validate(examples: Examples, folds: int, mcfg, tcfg, out: str | Path,
                   callback=None, should_stop=None, final: bool = True,
                   max_folds: int = 0, record: dict | None = None,
                   on_trainer=None, lms=None, encoder_from=None) -> dict:
    """K-fold cross-validation, stratified and seeded, with the one trainer for every fold.

    Fold k trains on the other K-1 folds (a stratified ``valid_fraction`` of them held out to
    keep the best parameters by accuracy, as a run without --valid does) under the run's
    limits, and is then classified with those parameters. The result holds each fold's
    held-out accuracy, their mean and sample standard deviation, and the throughput; at the
    end a model is trained on all the examples (no validation part: the limits end it) and
    written to ``out`` (``final=False``: not; benchmarks). ``max_folds`` N > 0 runs only the
    first N folds of the K (benchmarks with a small budget). Fold models live in a temporary
    directory beside ``out``. ``on_trainer(trainer)`` is told of each run before it starts
    (the command line shows its progress). ``lms``: the frozen LMs of --lm-features;
    ``encoder_from``: the --init-from language models that start every fold's encoder
    ([(Model, path)], see :func:`charlm.training.runs.start_encoder`).
    """
    on_trainer = on_trainer or (lambda t: None)
    out = Path(out)
    callback = callback or (lambda e: None)
    classes = label_set(examples.labels)
    y = classify.label_ids(examples.labels, classes, examples.where)
    parts = classify.stratified_folds(y, folds, tcfg.seed)
    rows = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.stem}.folds.", dir=out.parent) as tmp:
        for k, test in enumerate(parts[: max_folds or None], start=1):
            train = examples.subset(np.setdiff1d(np.arange(len(y)), test))
            model, t = classify.prepare(train, None, mcfg, tcfg, classes, lms)
            uniform_init(model, tcfg)
            if encoder_from:   # said once, for the first fold
                start_encoder(model, encoder_from, callback if k == 1 else lambda e: None)
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
            on_trainer(trainer)
            t0 = time.perf_counter()
            reason = trainer.run_loop()
            train_s = time.perf_counter() - t0
            if reason == "interrupted":
                raise CrossValidationInterrupted(
                    f"Cross-validation was interrupted in fold {k} of {folds}; nothing was "
                    "written. Run it again (it cannot be resumed).")
            best = type(model)(model.config, model.vocab, trainer.best_params, model.labels,
                               model.features)
            t1 = time.perf_counter()
            report = classify.evaluate_examples(best, examples.subset(test))
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
    final_cfg = replace(tcfg, valid_fraction=0.0)
    model, t = classify.prepare(examples, None, mcfg, final_cfg, classes, lms)
    uniform_init(model, final_cfg)
    if encoder_from:
        start_encoder(model, encoder_from, lambda e: None)
    trainer = Trainer(model, t, final_cfg, out, callback, should_stop)
    trainer.corpus_record = record
    on_trainer(trainer)
    reason = trainer.run_loop()
    summary["final_model"] = str(out)
    summary["final_stopped_by"] = reason
    return summary


def cross_validate_run(corpus=None, *, folds: int, valid=None, resume: bool = False,
                       callback=None, should_stop=None, max_folds: int = 0, on_trainer=None,
                       final: bool = True,
                       **run) -> dict:
    """``charlm train --task classify --folds K``: the run set up as any other
    (:func:`charlm.training.runs.plan_training`: options, limits, refusal and ``.bak``), then
    :func:`cross_validate` on its examples. The limits apply to every fold and to the final
    model (``final`` False: the folds only, no model file is written or set aside; for
    benchmarks). Returns the summary."""
    if valid is not None:
        raise ConfigError("--folds makes its own validation parts; drop --valid.")
    if resume:
        raise ConfigError("Cross-validation cannot be resumed; run it again without --resume.")
    callback = callback or (lambda e: None)
    plan = plan_training(corpus, task=run.pop("task", "classify"), callback=callback,
                         folds=folds, **run)
    examples, _ = classify.read_examples_of(plan.sources, plan.tcfg.label_column)
    if final:
        check_writable(plan.out)
        set_aside(plan.out, callback)
    return cross_validate(examples, folds, plan.mcfg, plan.tcfg, plan.out, callback,
                          should_stop, final=final, max_folds=max_folds, record=plan.record,
                          on_trainer=on_trainer, lms=plan.lms,
                          encoder_from=plan.encoder_from)
