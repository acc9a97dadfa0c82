"""``charlm classify`` and the classifier's side of ``charlm eval`` and ``charlm train``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ..training import checkpoint
from ..api import read_text
from ..errors import ConfigError, ModelFileError
from .common import (app, arg_text, emit_json, err, guarded, live_progress, open_model, out,
                     read_stdin)

DEFAULT_MODEL = Path("models") / "classify.npz"


def open_classifier(model: Optional[Path]):
    """The classifier in ``model`` (default models/classify.npz), or a clear error."""
    from ..use.classifier import Classifier
    m, meta, _ = open_model("word", model, tasks=("classify",))
    return Classifier(m, meta)


@app.command()
@guarded
def classify(
    texts: Optional[List[str]] = typer.Argument(None, help="Texts to classify ('-' = stdin)."),
    file: Optional[Path] = typer.Option(None, "--file",
                                        help="Classify each line of a file ('-' = stdin)."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of --file."),
    model: Optional[Path] = typer.Option(None, "--model",
                                         help="A classifier [default: models/classify.npz]."),
    show_all: bool = typer.Option(False, "--all", help="Show every class's probability."),
    batch: int = typer.Option(64, "--batch", help="Texts classified in parallel."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per text."),
):
    """The class of a text (many-to-one): its label and probability.

    One output line per input text, in order; with --file, one per line of the file (an empty
    line gives an empty output line, or "label": null with --json).
    """
    lines = [arg_text(t, "text") for t in texts or []]
    if file is not None:
        raw = read_stdin(encoding) if str(file) == "-" else read_text(file, encoding)
        lines += _file_lines(raw)
    elif lines == ["-"]:
        lines = _file_lines(read_stdin(encoding))
    if not lines:
        raise ConfigError("Nothing to classify. Give a text, or --file FILE.")
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1 (got {batch}).")
    clf = open_classifier(model)
    real = [i for i, t in enumerate(lines) if t.strip()]
    preds = dict(zip(real, clf.classify_many([lines[i] for i in real], batch)))
    for i, text in enumerate(lines):
        p = preds.get(i)
        if as_json:
            _emit_line_json(p.to_json() if p is not None else
                            {"text": text, "label": None, "probability": None,
                             "probabilities": {}})
        elif p is None:
            sys.stdout.write("\n")
        else:
            rest = "".join(f"\t{lab}={q:.4f}" for lab, q in p.probabilities.items()
                           if lab != p.label) if show_all else ""
            sys.stdout.write(f"{p.label}\t{p.probability:.4f}{rest}\n")
    sys.stdout.flush()


# Characters that str.splitlines() and many readers take for line ends: escaped in JSON
# output (where they can only sit inside strings) so that one object stays one line.
# (json.dumps escapes the control characters among them already.)
_LINE_ENDS = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"})


def _emit_line_json(obj) -> None:
    line = json.dumps(obj, ensure_ascii=False)
    sys.stdout.write(line.translate(_LINE_ENDS) + "\n")


def _file_lines(raw: str) -> list[str]:
    """A file's lines, split on "\\n" only (U+0085 and the like stay inside a line)."""
    lines = raw.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def eval_classifier(m, meta, file: Path, encoding: str, label_column: str,
                    as_json: bool) -> None:
    """``charlm eval FILE --model CLASSIFIER``: accuracy, macro-F1, per-class precision,
    recall and F1, and the confusion matrix."""
    from ..use.classifier import Classifier
    r = Classifier(m, meta).evaluate(file, label_column=label_column, encoding=encoding)
    if as_json:
        emit_json({"file": str(file), **r})
        return
    out.print(f"{file}: {r['examples']:,} examples, {len(r['classes'])} classes")
    out.print(f"accuracy {r['accuracy']:.4f}   macro-F1 {r['macro_f1']:.4f}")
    t = Table(title=None, show_edge=False, pad_edge=False)
    for name in ("class", "precision", "recall", "F1", "support"):
        t.add_column(name, justify="left" if name == "class" else "right")
    for c, v in r["per_class"].items():
        t.add_row(c, f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}",
                  f"{v['support']:,}")
    out.print(t)
    out.print("confusion matrix (rows: gold, columns: predicted)")
    cm = Table(show_edge=False, pad_edge=False)
    cm.add_column("gold \\ predicted")
    for c in r["classes"]:
        cm.add_column(c, justify="right")
    for c, row in zip(r["classes"], r["confusion"]):
        cm.add_row(c, *(f"{n:,}" for n in row))
    out.print(cm)


# ------------------------------------------------------------------ training
def train_classifier(files, classes, valid, label_column: str, encoding: str, folds: int,
                     mcfg, tcfg, out_file: Path, force: bool, resume: bool) -> None:
    """``charlm train --task classify``: one run (with --valid, or a seeded stratified
    validation part), or --folds K cross-validation and then the model on all the data."""
    import json
    import math
    import time

    import numpy as np
    from tqdm import tqdm

    from ..use.classifier import DEFAULT_FILES, cross_validate, default_corpus, prepare
    from ..tasks import classify as task
    from ..training.trainer import Trainer, TrainConfig
    from ..training.runs import check_writable, refuse_existing, set_aside
    from .train_cmd import StopFlag

    files = list(files or [])
    if not files and not classes:
        files = default_corpus()
        err.print(f"Training on the bundled review sentences: {', '.join(DEFAULT_FILES)} "
                  "(3,000 labelled sentences).")
    examples = task.read_examples(files, classes, label_column, encoding)
    if folds and valid is not None:
        raise ConfigError("--folds makes its own validation parts; drop --valid.")
    if folds and resume:
        raise ConfigError("Cross-validation cannot be resumed; run it again without --resume.")
    if resume:
        if not out_file.exists():
            raise ModelFileError(f"Nothing to resume: no model file at {out_file}. "
                                 "Check --out, or drop --resume to start a new run.")
        model, meta, arrays = checkpoint.load(out_file)
        if model.config.task != "classify" or not meta or "run" not in meta:
            raise ModelFileError(f"{out_file} holds no classifier training run to resume.")
        given = {k: getattr(tcfg, k) for k in ("epochs", "steps", "time_budget")
                 if getattr(tcfg, k)}
        tcfg = TrainConfig.from_json(meta["config"])
        if given:
            tcfg.epochs, tcfg.steps, tcfg.time_budget = (given.get("epochs", 0),
                                                         given.get("steps", 0),
                                                         given.get("time_budget", 0.0))
        mcfg = model.config
    else:
        refuse_existing(out_file, force)
    valid_ex = (task.read_examples([valid], (), label_column, encoding,
                                   task.label_set(examples.labels))
                if valid is not None else None)
    check_writable(out_file)
    if not resume:
        set_aside(out_file, lambda e: err.print(e["message"]))

    bar = {"bar": None}
    state = {"last": 0.0, "ema": None, "n": 0, "sec": 0.0}

    def write(line: str) -> None:
        b = bar["bar"]
        if b is not None:
            b.write(line, file=sys.stderr)
        else:
            err.print(line)

    def callback(e: dict) -> None:
        k = e["kind"]
        if k == "start":
            if bar["bar"] is not None:
                bar["bar"].close()
            total = tcfg.steps or (tcfg.epochs * e["windows_per_epoch"]) or None
            bar["bar"] = tqdm(total=total or round(tcfg.time_budget),
                              unit="step" if total else "s", file=sys.stderr, leave=False,
                              dynamic_ncols=True, initial=e["step"] if total else 0,
                              disable=not live_progress())   # no frames in a log file
            bar["by_time"] = not total
            write(f"{e['params']:,} parameters, vocabulary {e['vocab']}, "
                  f"{e['tokens_per_epoch']:,} examples per epoch in "
                  f"{e['windows_per_epoch']} batches of {tcfg.batch}.")
        elif k == "step":
            b = bar["bar"]
            if e["loss"] is not None:
                state["ema"] = e["loss"] if state["ema"] is None else \
                    0.95 * state["ema"] + 0.05 * e["loss"]
            state["n"] += e["tokens"]
            state["sec"] += e["seconds"]
            if b is not None:
                if bar["by_time"]:
                    b.n = min(int(e["elapsed"]), b.total)
                else:
                    b.n = e["step"]
                if time.perf_counter() - state["last"] > 0.5:
                    state["last"] = time.perf_counter()
                    b.set_postfix_str(f"ep {e['epoch'] + e['window'] / e['windows']:.2f} "
                                      f"loss {state['ema'] or math.nan:.3f} "
                                      f"{state['n'] / max(state['sec'], 1e-9):,.0f} ex/s")
        elif k == "eval":
            line = f"step {e['step']:>6}  epoch {e['epoch']:.2f}"
            if e.get("train_loss") is not None:
                line += f"  train loss {e['train_loss']:.4f}"
            if "valid_accuracy" in e:
                line += (f"  valid accuracy {e['valid_accuracy']:.4f}  macro-F1 "
                         f"{e['valid_macro_f1']:.4f}{'  *best' if e.get('best') else ''}")
            write(line)
        elif k == "fold_start":
            write(f"Fold {e['fold']}/{e['folds']}: training on {e['train']:,} examples "
                  f"(validation {e['valid']:,}), held out {e['test']:,}.")
        elif k == "fold":
            write(f"Fold {e['fold']}: held-out accuracy {e['accuracy']:.4f} "
                  f"({e['steps']:,} steps, {e['epochs']:.1f} epochs).")
        elif k == "final_start":
            write(f"Training the final model on all {e['examples']:,} examples.")
        elif k == "warning":
            write(f"Warning: {e['message']}")

    flag = StopFlag()
    flag.install()
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if folds:
                summary = cross_validate(examples, folds, mcfg, tcfg, out_file, callback, flag)
                trainer = None
            else:
                model0 = model if resume else None
                model, t = prepare(examples, valid_ex, mcfg, tcfg,
                                   model0.labels if model0 is not None else None)
                if resume:
                    if model.vocab.tokens != model0.vocab.tokens:
                        raise ConfigError("These examples give a different vocabulary from "
                                          f"the saved run's in {out_file}. Resume with the "
                                          "same files and options.")
                    model = model0
                trainer = Trainer(model, t, tcfg, out_file, callback, flag)
                if resume:
                    trainer.restore(meta, arrays)
                reason = trainer.run_loop()
    finally:
        flag.uninstall()
        if bar["bar"] is not None:
            bar["bar"].close()
    if trainer is not None and reason == "interrupted":
        err.print(f"Interrupted at step {trainer.run.step}; the run is saved in {out_file}. "
                  f"Continue it with: charlm train --task classify ... --resume --out {out_file}")
        raise typer.Exit(143 if flag.signum == 15 else 130)
    if folds:
        cv_path = out_file.with_name(out_file.stem + ".cv.json")
        cv_path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        print(f"{folds}-fold cross-validation, {summary['examples']:,} examples: held-out "
              f"accuracy {100 * summary['mean_accuracy']:.2f} % ± "
              f"{100 * summary['sd_accuracy']:.2f} (mean ± sd over folds)")
        print("per fold: " + " ".join(f"{100 * r['accuracy']:.1f}"
                                      for r in summary["per_fold"]))
        print(f"training {summary['train_sent_per_s']:,.0f} sentences/s, classifying "
              f"{summary['classify_sent_per_s']:,.0f} sentences/s (medians over folds)")
        print(f"Details: {cv_path}")
    else:
        run = trainer.run
        print(f"Trained {run.step:,} steps ({run.tokens_seen:,} examples); stopped by the "
              f"{reason} limit.")
        if run.best_valid is not None:
            print(f"Best validation accuracy {run.best_valid:.4f} at step {run.best_step:,}.")
    print(f"Model: {out_file}")
    flag_model = "" if out_file == DEFAULT_MODEL else f" --model {out_file}"
    print(f"Next: charlm classify{flag_model} \"some text\"    "
          f"charlm eval TEST --model {out_file}")
