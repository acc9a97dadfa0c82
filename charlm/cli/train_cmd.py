"""``charlm train``: options, the progress display, interruption and the summary."""

from __future__ import annotations

import math
import signal
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from tqdm import tqdm

from ..training import checkpoint
from ..errors import ConfigError
from ..nn.model import Model, ModelConfig
from .render import format_duration
from . import common
from .common import (Activation, Cell, ClipMode, Dtype, LabelColumn, Level, Optimizer, Pool,
                     Schedule, Task, Tokenizer, app, err, fit_line, guarded, live_progress)

# ------------------------------------------------------------------------ train
class StopFlag:
    """SIGINT / SIGTERM ask the trainer to stop after the current step (a second Ctrl-C
    stops at once; the model file is never half-written either way)."""

    def __init__(self):
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    def handler(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def install(self):
        self.previous = {s: signal.signal(s, self.handler)
                         for s in (signal.SIGINT, signal.SIGTERM)}

    def uninstall(self):
        """Put the handlers that were there before back (for in-process callers)."""
        for s, h in getattr(self, "previous", {}).items():
            signal.signal(s, h)


@app.command()
@guarded
def train(
    ctx: typer.Context,
    corpus: Optional[List[Path]] = typer.Argument(
        None, help="Text files to train on (default: the bundled tiny Shakespeare); "
                   "--task tag: one CoNLL file (default: the bundled Broad Twitter Corpus)."),
    task: Task = typer.Option("lm", "--task",
                             help="lm (language model), tag (a label per token, CoNLL "
                                  "files) or classify (a label per line)."),
    bidirectional: bool = typer.Option(False, "--bidirectional",
                                       help="tag, classify: every layer a BRNN, reading "
                                            "the sentence both ways."),
    pool: Pool = typer.Option("last", "--pool",
                             help="classify: last (a<T_x>), mean or max over the steps."),
    classes: Optional[List[str]] = typer.Option(
        None, "--class", metavar="LABEL=FILE", help="classify: LABEL=FILE, a file of one class's texts "
                              "(repeat per class)."),
    label_column: LabelColumn = typer.Option("auto", "--label-column",
                                     help="classify: the label column, auto, first or last."),
    folds: int = typer.Option(0, "--folds",
                              help="classify: K-fold cross-validation first; 0 = none."),
    char_embed: int = typer.Option(0, "--char-embed",
                                   help="tag: character embedding size of the per-word "
                                        "character BRNN; 0 = off."),
    char_hidden: int = typer.Option(0, "--char-hidden",
                                    help="tag: hidden size of the character BRNN; 0 = off."),
    lm_features: Optional[str] = typer.Option(
        None, "--lm-features", help="tag: character LM files (fwd.npz,bwd.npz) whose states "
                                    "feed each word; embedded in the model file."),
    reverse: bool = typer.Option(False, "--reverse",
                                 help="lm, char level: read each line backwards (a backward "
                                      "LM for --lm-features)."),
    level: Level = typer.Option("char", "--level", help="Tokens: char or word."),
    tokenizer: Tokenizer = typer.Option("words", "--tokenizer",
                                        help="Word level: words (splits words, numbers and "
                                             "punctuation) or whitespace (a corpus already "
                                             "tokenized: exactly the space-separated pieces)."),
    cell: Cell = typer.Option("lstm", "--cell", help="Recurrent cell: rnn, gru or lstm."),
    layers: int = typer.Option(2, "--layers", help="Stacked recurrent layers (deep RNN)."),
    hidden: int = typer.Option(512, "--hidden", help="Hidden units per layer (n_a)."),
    embed: int = typer.Option(64, "--embed", help="Embedding size; 0 = one-hot inputs."),
    activation: Activation = typer.Option("tanh", "--activation", help="Basic RNN: tanh or relu."),
    peephole: bool = typer.Option(False, "--peephole", help="LSTM: gates also see c<t-1>."),
    simplified: bool = typer.Option(False, "--simplified", help="GRU: no relevance gate Γr."),
    dropout: float = typer.Option(0.2, "--dropout", help="Dropout between layers, [0, 1)."),
    dtype: Dtype = typer.Option("float32", "--dtype", help="float32 or float64."),
    vocab_size: int = typer.Option(10000, "--vocab-size",
                                   help="Most tokens kept, counting <EOS> and <UNK>."),
    min_count: int = typer.Option(1, "--min-count", help="Drop tokens seen fewer times."),
    lowercase: bool = typer.Option(False, "--lowercase", help="Lower-case the text first."),
    unk_token: str = typer.Option("<unk>", "--unk-token",
                                  help="The corpus's own unknown marker, read as <UNK>."),
    prose: bool = typer.Option(False, "--prose",
                               help="Join wrapped lines into paragraphs (word level: "
                                    "sentences) instead of one sequence per line."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the corpus."),
    optimizer: Optimizer = typer.Option("adam", "--optimizer", help="sgd, adagrad or adam."),
    lr: float = typer.Option(2e-3, "--lr", help="Learning rate."),
    momentum: float = typer.Option(0.0, "--momentum", help="SGD momentum."),
    schedule: Schedule = typer.Option("constant", "--schedule",
                                 help="constant, decay (×--decay each epoch from "
                                      "--decay-after) or plateau (×--decay when validation "
                                      "does not improve)."),
    decay: float = typer.Option(0.5, "--decay", help="Learning-rate factor of the schedule."),
    decay_after: int = typer.Option(1, "--decay-after", help="Epoch where decay starts."),
    clip: float = typer.Option(5.0, "--clip",
                               help="Clipping threshold for the gradient of L = Σ_t L<t> "
                                    "(summed over the window); 0 = off."),
    clip_mode: ClipMode = typer.Option("norm", "--clip-mode",
                                  help="norm (global norm) or value (element-wise)."),
    batch: int = typer.Option(32, "--batch", help="Rows trained in parallel (m)."),
    bptt: int = typer.Option(128, "--bptt", help="Steps per truncated-BPTT window (T)."),
    seed: int = typer.Option(1234, "--seed", help="Random seed: same seed, same model."),
    epochs: Optional[int] = typer.Option(None, "--epochs",
                                         help="Stop after this many epochs (with --resume: "
                                              "this many more)."),
    steps: Optional[int] = typer.Option(None, "--steps",
                                        help="Stop after this many steps (with --resume: "
                                             "this many more)."),
    time_limit: Optional[str] = typer.Option(
        None, "--time", help="Stop after this much training time, e.g. 90s, 10m, 1h30m "
                             "(default 10m when no --epochs or --steps is given; with "
                             "--resume: this much more; 0 is not allowed, leave it out)."),
    valid: Optional[Path] = typer.Option(None, "--valid", help="A validation text file."),
    patience: int = typer.Option(0, "--patience",
                                 help="Stop after N evaluations without improvement; 0 = "
                                      "never."),
    valid_fraction: float = typer.Option(0.1, "--valid-fraction",
                                         help="Without --valid: the last part of the corpus "
                                              "kept for validation."),
    eval_every: int = typer.Option(500, "--eval-every", help="Validate every N steps."),
    eval_batch: int = typer.Option(32, "--eval-batch", help="Rows of the validation pass."),
    sample_every: int = typer.Option(0, "--sample-every",
                                     help="Show a short sample every N steps; 0 = only at "
                                          "evaluations."),
    out_path: Optional[Path] = typer.Option(None, "--out",
                                            help="Model file [default: models/<level>.npz]."),
    force: bool = typer.Option(False, "--force",
                               help="Replace an existing model file (kept as .bak)."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue the run saved in --out where it stopped (its "
                                     "recorded corpus unless one is given; limits given now "
                                     "count from now; shape options cannot change)."),
    init_from: Optional[Path] = typer.Option(None, "--init-from",
                                             help="Start from this model file's vocabulary "
                                                  "and parameters (fine-tuning), with a "
                                                  "fresh optimizer and history."),
    init_scale: Optional[float] = typer.Option(None, "--init-scale",
                                               help="Draw every weight from U(-S, S) "
                                                    "(e.g. 0.1) [default: the cells' own "
                                                    "initialisation]."),
):
    """Train a model: a language model on text files (one sequence per line by default), a
    tagger on CoNLL files (--task tag) or a classifier on labelled lines (--task classify)."""
    from ..training.runs import (check_writable, given_limits, load_resumable, prepare_training,
                        refuse_existing, set_aside)
    from ..training.trainer import TrainConfig

    out_file = out_path or Path("models") / f"{level if task == 'lm' else task}.npz"
    if out_file.is_dir():
        raise ConfigError(f"--out {out_file} is a directory. Give a file name, e.g. "
                          f"--out {out_file / (level + '.npz')}.")
    if task != "classify" and (classes or folds or label_column != "auto"):
        raise ConfigError("--class, --folds and --label-column apply to --task classify only. "
                          "Add --task classify or drop them.")
    saved_task = _saved_task(out_file) if resume else None
    if lm_features and task != "tag":
        raise ConfigError("--lm-features feeds a tagger: it applies to --task tag only. Add "
                          "--task tag or drop it.")
    if reverse and task != "lm":
        raise ConfigError("--reverse trains a backward language model: it applies to --task "
                          "lm only. Drop it.")
    from ..training.mpienv import under_mpi, world_size
    if under_mpi() and (task != "lm" or saved_task not in (None, "lm")):
        raise ConfigError(f"--task {saved_task or task} cannot be trained over MPI yet (only "
                          f"the language model can; this job has {world_size()} processes). "
                          "Run it without mpiexec.")
    if task == "lm" and saved_task in (None, "lm"):
        # Only the options given on the command line go to the library (the rest are its
        # defaults): a resume compares exactly those with the saved run.
        names = {"out_path": "out", "time_limit": "time"}
        skip = {"corpus", "task", "classes", "label_column", "folds"}
        opts = {names.get(k, k): v for k, v in ctx.params.items()
                if k not in skip
                and getattr(ctx.get_parameter_source(k), "name", "") != "DEFAULT"}
        trainer = prepare_training(list(corpus) if corpus else None, callback=_setup_message,
                                   reducer=_mpi_reducer(), **opts)
        return _run_training(trainer, trainer.out, trainer.cfg.level)
    # the sentence tasks (tag, classify): their own data, the same trainer
    if saved_task is not None and saved_task != task:
        raise ConfigError(f"{out_file} holds a {saved_task} model; resume it with --task "
                          f"{saved_task}, or choose another --out.")
    limits = {"epochs": 0, "steps": 0, "time_budget": 0.0}
    limits.update(given_limits(epochs, steps, time_limit, None))
    if resume and force:
        raise ConfigError("--resume continues the file that --force would replace. "
                          "Use one of them.")
    if resume:
        model, meta, arrays, tcfg = load_resumable(out_file)
        given = {k: v for k, v in limits.items() if v}
        if given:  # new limits replace the old ones; the rest of the run is as it was
            tcfg.epochs, tcfg.steps, tcfg.time_budget = (given.get("epochs", 0),
                                                         given.get("steps", 0),
                                                         given.get("time_budget", 0.0))
        if model.config.task == "classify":
            from .classify_cmds import train_classifier
            return train_classifier(corpus, classes or [], valid, label_column, encoding, 0,
                                    None, TrainConfig(**limits), out_file, False, True)
        trainer = _task_trainer(model, corpus, valid, encoding, tcfg, out_file)
        trainer.restore(meta, arrays)
        check_writable(out_file)
        return _run_training(trainer, out_file, tcfg.level)
    else:
        refuse_existing(out_file, force)
        if not any(limits.values()):
            limits["time_budget"] = 600.0
        mcfg = ModelConfig(cell=cell, layers=layers, hidden=hidden, embed=embed,
                           activation=activation, peephole=peephole, simplified=simplified,
                           dropout=dropout, dtype=dtype, task=task,
                           bidirectional=bidirectional, pool=pool, char_embed=char_embed,
                           char_hidden=char_hidden)
        mcfg.validate()
        if task == "tag":
            if getattr(ctx.get_parameter_source("level"), "name", "") != "DEFAULT" \
                    and level != "word":
                raise ConfigError("A tagger labels words: --task tag reads word tokens. Drop "
                                  "--level char (--char-embed adds each word's characters).")
            level = "word"
        tcfg = TrainConfig(level=level, patience=patience, prose=prose, lowercase=lowercase,
                           reverse=reverse,
                           vocab_size=vocab_size, min_count=min_count, unk_token=unk_token,
                           optimizer=optimizer, lr=lr, momentum=momentum, schedule=schedule,
                           decay=decay, decay_after=decay_after, clip=clip,
                           clip_mode=clip_mode, batch=batch, bptt=bptt, seed=seed,
                           valid_fraction=valid_fraction, eval_every=eval_every,
                           eval_batch=eval_batch, sample_every=sample_every, **limits)
        tcfg.validate()
        if task == "classify":
            from .classify_cmds import train_classifier
            return train_classifier(corpus, classes or [], valid, label_column, encoding,
                                    folds, mcfg, tcfg, out_file, force, False)
        trainer = _task_trainer(mcfg, corpus, valid, encoding, tcfg, out_file, lm_features)
        set_aside(out_file, _setup_message)
    check_writable(out_file)
    _run_training(trainer, out_file, level)


def _mpi_reducer():
    """Under mpiexec -n N (N > 1), what combines the processes' work; else None."""
    from ..training.mpienv import under_mpi
    if not under_mpi():
        return None
    from ..training.distributed import Reducer
    reducer = Reducer()
    if reducer.is_writer:
        err.print(f"MPI: {reducer.size} processes share each batch; this one (rank 0) "
                  "shows the progress and writes the model file.")
    return reducer


def _saved_task(out_file: Path) -> str | None:
    """The task of the run saved in ``out_file`` (None when there is no such file)."""
    if not out_file.exists():
        return None
    model, _, _ = checkpoint.load(out_file)
    return model.config.task


def _setup_message(e: dict) -> None:
    """Warnings and notices before training starts (the progress display is not up yet)."""
    if e["kind"] in ("warning", "notice"):
        err.print(("Warning: " if e["kind"] == "warning" else "") + e["message"])


def _task_trainer(model_or_config, corpus, valid, encoding, tcfg, out_file, lm_features=None):
    """The trainer of a sentence task (tag): a new model for a ModelConfig, or the saved one
    (--resume), which must match the data's vocabulary and labels."""
    from ..tasks.tag import TagTask, create_model, load_data
    from ..training.trainer import Trainer
    task = model_or_config.config.task if isinstance(model_or_config, Model) else \
        model_or_config.task
    if task != "tag":
        raise ConfigError(f"--task {task} cannot be trained by this charlm. Use lm or tag.")
    if not corpus:
        err.print("Training on the bundled corpus: the Broad Twitter Corpus (6,338 tweets; "
                  "its dev part validates).")
    data = load_data(corpus or None, valid, tcfg, encoding)
    if isinstance(model_or_config, ModelConfig):
        model = create_model(model_or_config, data, np.random.default_rng(tcfg.seed),
                             lm_features)
    else:
        model = model_or_config
        if data.vocab.tokens != model.vocab.tokens or data.labels != model.labels:
            raise ConfigError("This data gives a different vocabulary or label set from the "
                              f"one the saved run in {out_file} was trained with. Resume with "
                              "the same files and options.")
    return Trainer(model, TagTask(data, tcfg, model), tcfg, out_file)


class BarDisplay:
    """Progress on a terminal: a tqdm bar (steps, or seconds of a time budget) with the
    latest figures beside it, and whole lines written above it."""

    def __init__(self, total: int, initial: int, by_time: bool):
        self.by_time = by_time
        self.last = time.perf_counter()
        self.bar = tqdm(total=total, initial=initial, unit="s" if by_time else "step",
                        file=sys.stderr, dynamic_ncols=True, leave=True,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}"
                                   "{postfix}]")

    def line(self, text: str) -> None:
        self.bar.write(text, file=sys.stderr)

    def step(self, e: dict, status) -> None:
        due = time.perf_counter() - self.last > 0.5
        if self.by_time:
            self.bar.n = min(int(e["elapsed"]), self.bar.total)
            if due:
                self.bar.refresh()
        else:
            self.bar.update(1)
        if due:
            self.last = time.perf_counter()
            self.bar.set_postfix_str(status(e), refresh=True)

    def evaluated(self, e: dict, status) -> None:
        pass   # the bar shows the figures already

    def close(self) -> None:
        self.bar.close()


class LineDisplay:
    """Progress without a terminal (``2>train.log``, CI, nohup): plain lines that ``tail -f``
    can follow, one at each evaluation and at most one every ``every`` seconds between."""

    def __init__(self, every: float):
        self.every = every
        self.last = time.perf_counter()

    def line(self, text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def step(self, e: dict, status) -> None:
        if time.perf_counter() - self.last >= self.every:
            self.evaluated(e, status)

    def evaluated(self, e: dict, status) -> None:
        self.last = time.perf_counter()
        self.line(status(e))

    def close(self) -> None:
        pass


def _run_training(trainer, out_file: Path, level: str) -> None:
    cfg, run = trainer.cfg, trainer.run
    if trainer.reducer is not None and not trainer.reducer.is_writer:
        _run_quietly(trainer)   # rank 0 shows the progress and the summary
        return
    task = trainer.task.name
    unit = "bits/char" if level == "char" else "ppl"

    def metric(loss):
        return (f"{loss / math.log(2):.3f}" if level == "char"
                else f"{math.exp(min(loss, 700)):.1f}")

    total = None
    if cfg.steps or cfg.epochs:
        cands = [c for c in (cfg.steps, cfg.epochs * len(trainer.batches)) if c]
        total = min(cands)
    by_time = total is None
    if live_progress():
        display = BarDisplay(round(cfg.time_budget) if by_time else total,
                             0 if by_time else run.step, by_time)
    else:
        display = LineDisplay(common.PLAIN_PROGRESS_SECONDS)
    state = {"ema": None, "tok": 0, "sec": 0.0, "step": None}

    def status(e: dict) -> str:
        """The latest figures: step, epoch, smoothed training loss, speed, elapsed time."""
        loss = state["ema"] if state["ema"] is not None else float("nan")
        epoch = e["epoch"] + e["window"] / e["windows"] if "window" in e else e["epoch"]
        return fit_line(f"step {e['step']:,}  epoch {epoch:.2f}  loss {loss:.3f} nats  "
                    f"{state['tok'] / max(state['sec'], 1e-9):,.0f} tok/s  "
                    f"{format_duration(state['elapsed'])}")

    def callback(e: dict) -> None:
        k = e["kind"]
        if k == "start":
            state["elapsed"] = run.elapsed
            display.line(fit_line(f"{e['params']:,} parameters, vocabulary {e['vocab']:,}."))
            if task != "lm":
                display.line(fit_line(
                    f"{len(trainer.model.labels)} labels, {e['tokens_per_epoch']:,} tokens per "
                    f"epoch in {e['windows_per_epoch']:,} batches of up to {cfg.batch} "
                    "sentences."))
            else:
                display.line(fit_line(f"{e['tokens_per_epoch']:,} tokens per epoch in "
                                  f"{e['windows_per_epoch']:,} windows of {cfg.batch}×{cfg.bptt}."))
        elif k == "step":
            if e["loss"] is not None:
                state["ema"] = e["loss"] if state["ema"] is None else \
                    0.95 * state["ema"] + 0.05 * e["loss"]
            state["tok"] += e["tokens"]
            state["sec"] += e["seconds"]
            state["elapsed"] = e["elapsed"]
            state["step"] = e
            display.step(e, status)
        elif k == "eval":
            if state["step"] is not None:
                display.evaluated(state["step"], status)
            line = f"step {e['step']:>6}  epoch {e['epoch']:5.2f}"
            if e.get("train_loss") is not None:
                line += f"  train {e['train_loss']:.4f}"
            if task != "lm" and "valid_loss" in e:
                line += f"  valid loss {e['valid_loss']:.4f}  accuracy {e['valid_accuracy']:.4f}"
                if "valid_f1" in e:
                    line += (f"  entity F1 {e['valid_f1']:.4f} (P {e['valid_precision']:.3f} "
                             f"R {e['valid_recall']:.3f})")
                line += " *best" if e.get("best") else ""
            elif "valid_loss" in e:
                line += (f"  valid {e['valid_loss']:.4f} = {metric(e['valid_loss'])} {unit}"
                         f"{' *best' if e.get('best') else ''}")
            display.line(fit_line(line))
            if not cfg.sample_every and task == "lm":
                s = trainer.progress_sample().replace("\n", " ⏎ ")
                display.line(fit_line(f"  sample: {s}"))
        elif k == "sample":
            display.line(fit_line("  sample: " + e["text"].replace("\n", " ⏎ ")))
        elif k == "warning":
            display.line(f"Warning: {e['message']}")
        elif k == "notice":
            display.line(e["message"])

    trainer.callback = callback
    try:
        reason, flag = _run_stoppable(trainer)
    finally:
        display.close()
    if reason == "interrupted":
        from ..training.runs import resume_command
        code = 143 if flag.signum == signal.SIGTERM else 130
        err.print(f"Interrupted at step {run.step}; the run is saved in {out_file}. "
                  f"Continue it with: "
                  f"{resume_command(out_file, trainer.corpus_record, trainer.task.name)}")
        raise typer.Exit(code)
    if reason == "nothing":
        from ..api import nothing_trained
        err.print(nothing_trained(trainer))
        return
    red = trainer.reducer
    if red is not None and red.calls:
        err.print(f"MPI: the all-reduce took {red.seconds:.2f} s of {run.elapsed:.2f} s "
                  f"({red.seconds / max(run.elapsed, 1e-9):.1%}; {red.calls} steps, "
                  f"{1e3 * red.seconds / red.calls:.2f} ms each) on rank 0.")
    _summary(trainer, out_file, level, reason)


def _run_stoppable(trainer) -> tuple[str, StopFlag]:
    """Run the trainer with Ctrl-C and SIGTERM asking it to stop after the current step (the
    trainer keeps numpy's overflow warnings of a diverging step to itself)."""
    flag = StopFlag()
    trainer.should_stop = flag
    flag.install()
    try:
        return trainer.run_loop(), flag
    finally:
        flag.uninstall()


def _run_quietly(trainer) -> None:
    """A rank other than 0: train, stop when the ranks agree to, show nothing."""
    reason, flag = _run_stoppable(trainer)
    if reason == "interrupted":
        raise typer.Exit(143 if flag.signum == signal.SIGTERM else 130)


def _summary(trainer, out_file: Path, level: str, reason: str) -> None:
    run = trainer.run
    lines = [f"Trained {run.step:,} step{'s' if run.step != 1 else ''} "
             f"({run.tokens_seen:,} tokens, "
             f"{format_duration(run.elapsed)}); stopped by the {reason} limit."]
    if trainer.task.name != "lm":
        what = {"valid_f1": "entity F1", "valid_accuracy": "token accuracy"}
        if run.best_valid is not None:
            lines.append(f"Best validation {what.get(trainer.task.metric, trainer.task.metric)}"
                         f" {run.best_valid:.4f} at step {run.best_step:,}.")
        lines.append(f"Model: {out_file}")
        flag = "" if out_file == Path("models") / "tag.npz" else f" --model {out_file}"
        lines.append(f"Next: charlm tag{flag} \"some text\"    charlm eval{flag} DEV.conll")
        print("\n".join(lines))
        return
    if run.best_valid is not None:
        b = run.best_valid
        extra = (f"{b / math.log(2):.3f} bits/char" if level == "char"
                 else f"perplexity {math.exp(min(b, 700)):.1f}")
        lines.append(f"Best validation loss {b:.4f} nats/token ({extra}) at step "
                     f"{run.best_step:,}.")
    lines.append(f"Model: {out_file}")
    flag = "" if out_file == Path("models") / f"{level}.npz" else f" --model {out_file}"
    lvl = "" if level == "char" and not flag else f" --level {level}" if not flag else ""
    lines.append(f"Next: charlm sample{lvl}{flag}    charlm score{lvl}{flag} \"some text\"")
    print("\n".join(lines))
