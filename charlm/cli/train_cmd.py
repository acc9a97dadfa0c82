"""``charlm train``: options, the progress display, interruption and the summary."""

from __future__ import annotations

import inspect
import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from tqdm import tqdm

from ..errors import ConfigError
from ..tasks import TASKS
from ..training import checkpoint
from ..training.folds import cross_validate_run
from ..training.mpienv import under_mpi, world_size
from ..training.runs import (
    DEFAULT_SECONDS,
    default_out,
    nothing_trained,
    prepare_training,
    resume_command,
)
from ..training.runs import flag as option_flag
from ..training.trainer import parse_duration
from . import common
from .common import (
    Activation,
    Cell,
    ClipMode,
    Dtype,
    LabelColumn,
    Level,
    Optimizer,
    PanelCommand,
    Pool,
    Schedule,
    StopFlag,
    Task,
    Tokenizer,
    app,
    err,
    fit_line,
    guarded,
    live_progress,
)
from .render import format_duration, percent

# ------------------------------------------------------------------------ train
# The panels of `charlm train --help`, in order, and the options in each (by parameter name).
PANELS = {
    "Model": ("task", "cell", "layers", "hidden", "embed", "activation", "peephole",
              "simplified", "bidirectional", "dropout", "input_dropout", "tie_weights", "dtype",
              "init_scale"),
    "Data and vocabulary": ("level", "tokenizer", "vocab_size", "min_count", "lowercase",
                            "unk_token", "prose", "reverse", "encoding"),
    "Optimisation": ("optimizer", "lr", "momentum", "schedule", "decay", "decay_after", "clip",
                     "clip_mode", "batch", "bptt", "seed"),
    "Limits and validation": ("epochs", "steps", "time_limit", "valid", "valid_fraction",
                              "patience", "eval_every", "eval_batch", "sample_every"),
    "Files": ("out_path", "force", "resume", "init_from"),
    "Tagging (--task tag)": ("char_embed", "char_hidden", "lm_features"),
    "Classification (--task classify)": ("pool", "classes", "label_column", "folds"),
}
# Parameter names whose library option has another name (the task modules' DEFAULTS keys).
LIBRARY_NAMES = {"out_path": ("out",), "time_limit": ("time", "time_budget")}


class TrainCommand(PanelCommand):
    panel_order = tuple(PANELS) + ("Options",)


@app.command(cls=TrainCommand)
@guarded
def train(
    ctx: typer.Context,
    corpus: Optional[List[Path]] = typer.Argument(
        None, help="Files to train on ('-' = stdin). lm: text files (default: the bundled "
                   "tiny Shakespeare); tag: one CoNLL file (default: the bundled Broad "
                   "Twitter Corpus); classify: labelled lines, LABEL<TAB>TEXT, TEXT<TAB>LABEL "
                   "or __label__X TEXT (default: the bundled review sentences)."),
    task: Task = typer.Option("lm", "--task",
                             help="lm (language model), tag (a label per token, CoNLL "
                                  "files) or classify (a label per line)."),
    bidirectional: bool = typer.Option(False, "--bidirectional/--no-bidirectional",
                                       help="tag, classify: every layer a BRNN, reading "
                                            "the sentence both ways."),
    pool: Pool = typer.Option("last", "--pool",
                             help="classify: last (a<T_x>), mean or max over the steps."),
    classes: Optional[List[str]] = typer.Option(
        None, "--class", metavar="LABEL=FILE",
        help="classify: LABEL=FILE, a file of one class's texts "
                              "(repeat per class)."),
    label_column: LabelColumn = typer.Option("auto", "--label-column",
                                     help="classify: the label column, auto, first or last."),
    folds: int = typer.Option(0, "--folds",
                              help="classify: K-fold cross-validation first, then the model "
                                   "on all the data; the limits (--time …) apply to each "
                                   "fold and to that model; 0 = none."),
    char_embed: int = typer.Option(0, "--char-embed",
                                   help="tag: character embedding size of the per-word "
                                        "character BRNN; 0 = off."),
    char_hidden: int = typer.Option(0, "--char-hidden",
                                    help="tag: hidden size of the character BRNN; 0 = off."),
    lm_features: Optional[str] = typer.Option(
        None, "--lm-features", help="tag, classify (word level): character LM files, a "
                                    "forward and a backward (--reverse) one, e.g. "
                                    "fwd.npz,bwd.npz, whose states feed each word; embedded "
                                    "in the model file."),
    reverse: bool = typer.Option(False, "--reverse",
                                 help="lm, char level: read each line backwards (a backward "
                                      "LM for --lm-features)."),
    level: Level = typer.Option("char", "--level", help="Tokens: char or word."),
    tokenizer: Tokenizer = typer.Option("words", "--tokenizer",
                                        help="lm, classify, word level: words (splits words, "
                                             "numbers and punctuation) or whitespace (a text "
                                             "already tokenized: exactly the space-separated "
                                             "pieces)."),
    cell: Cell = typer.Option("lstm", "--cell", help="Recurrent cell: rnn, gru or lstm."),
    layers: int = typer.Option(2, "--layers", help="Stacked recurrent layers (deep RNN)."),
    hidden: int = typer.Option(512, "--hidden", help="Hidden units per layer (n_a)."),
    embed: int = typer.Option(64, "--embed", help="Embedding size; 0 = one-hot inputs."),
    tie_weights: bool = typer.Option(False, "--tie-weights",
                                     help="lm: the embedding is also the output layer's "
                                          "weights (W_y = E; needs --embed = --hidden)."),
    activation: Activation = typer.Option("tanh", "--activation", help="Basic RNN: tanh or relu."),
    peephole: bool = typer.Option(False, "--peephole", help="LSTM: gates also see c<t-1>."),
    simplified: bool = typer.Option(False, "--simplified", help="GRU: no relevance gate Γr."),
    dropout: float = typer.Option(0.2, "--dropout", help="Dropout between layers, [0, 1)."),
    input_dropout: float = typer.Option(
        0.0, "--input-dropout",
        help="Dropout on the first layer's input (the embedding and any word features), "
             "[0, 1)."),
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
    clip: Optional[float] = typer.Option(
        None, "--clip", help="Clipping threshold for the gradient of L = Σ_t L<t> (summed "
                             "over the window); 0 = off [default: 5 × --bptt for a language "
                             "model with Adam (5 per step), else 5]."),
    clip_mode: ClipMode = typer.Option("norm", "--clip-mode",
                                  help="norm (global norm) or value (element-wise)."),
    batch: int = typer.Option(32, "--batch", help="Rows (lm), sentences or examples trained "
                                                   "in parallel (m)."),
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
    valid: Optional[Path] = typer.Option(None, "--valid",
                                         help="A validation file, in the corpus's format."),
    patience: int = typer.Option(0, "--patience",
                                 help="Stop after N evaluations without improvement; 0 = "
                                      "never."),
    valid_fraction: float = typer.Option(0.1, "--valid-fraction",
                                         help="Without --valid: the part of the corpus kept "
                                              "for validation (lm, tag: its end; classify: "
                                              "of each class, drawn with --seed)."),
    eval_every: int = typer.Option(500, "--eval-every", help="Validate every N steps."),
    eval_batch: int = typer.Option(32, "--eval-batch",
                                   help="Rows, sentences or examples of each validation batch."),
    sample_every: int = typer.Option(0, "--sample-every",
                                     help="Show a sample (lm) or a tagged sentence (tag) "
                                          "every N steps; 0 = lm: at each evaluation, tag: "
                                          "never."),
    out_path: Optional[Path] = typer.Option(None, "--out",
                                            help="Model file [default: lm models/<level>.npz, "
                                                 "tag models/tag.npz, classify "
                                                 "models/classify.npz]."),
    force: bool = typer.Option(False, "--force",
                               help="Replace an existing model file (kept as .bak)."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue the run saved in --out where it stopped (its "
                                     "recorded corpus unless one is given; limits given now "
                                     "count from now; shape options cannot change)."),
    init_from: Optional[Path] = typer.Option(None, "--init-from",
                                             help="lm: start from this model file's "
                                                  "vocabulary and parameters (fine-tuning; "
                                                  "starter = the bundled starter model). "
                                                  "tag, classify: start the encoder from a "
                                                  "language model of the same level "
                                                  "(FWD.npz, or FWD.npz,BWD.npz with a "
                                                  "--reverse one for the backward direction)."
                                                  " A fresh optimizer and history."),
    init_scale: Optional[float] = typer.Option(None, "--init-scale",
                                               help="Draw every weight from U(-S, S) "
                                                    "(e.g. 0.1) [default: the cells' own "
                                                    "initialisation]."),
):
    """Train a model: a language model on text files (one sequence per line by default), a
    tagger on CoNLL files (--task tag) or a classifier on labelled lines (--task classify)."""
    # Only the options given on the command line go to the library (the rest are the task's
    # defaults): a resume compares exactly those with the saved run.
    names = {"out_path": "out", "time_limit": "time"}
    skip = {"corpus", "task"}
    opts = {names.get(k, k): v for k, v in ctx.params.items()
            if k not in skip
            and getattr(ctx.get_parameter_source(k), "name", "") != "DEFAULT"}
    corpus = list(corpus) if corpus else None
    out_file = out_path or default_out(level, task)
    saved_task = _saved_task(out_file) if resume and not out_file.is_dir() else None
    if under_mpi() and (task != "lm" or saved_task not in (None, "lm")):
        raise ConfigError(f"--task {saved_task or task} cannot be trained over MPI yet (only "
                          f"the language model can; this job has {world_size()} processes). "
                          "Run it without mpiexec.")
    if folds:
        return _cross_validate(corpus, task, opts)
    trainer = prepare_training(corpus, task=task, callback=_setup_message,
                               reducer=_mpi_reducer(), **opts)
    _run_training(trainer, trainer.out, trainer.cfg.level)


def task_default_text(key: str, default, keys: tuple = ()) -> str | None:
    """``lm 512, tag 128, classify 64``: each task's default of an option whose default
    differs between tasks (each task module's ``DEFAULTS``, else ``default``); None when all
    tasks share it. ``keys``: the other names the option has in ``DEFAULTS``."""
    def shown(v) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v).lower() if isinstance(v, bool) \
            else str(v)
    values = {}
    for t, mod in TASKS.items():
        v = next((mod.DEFAULTS[k] for k in (key, *keys) if k in mod.DEFAULTS), default)
        values[t] = v
    if len({shown(v) for v in values.values()}) < 2:
        return None
    return ", ".join(f"{t} {shown(v)}" for t, v in values.items())


def dress_help(command, panels: dict) -> None:
    """Put each option of ``command`` in its panel, and show the per-task defaults of the
    options whose default differs between tasks (built from the task modules' ``DEFAULTS``
    when the command is defined, so the help follows them)."""
    panel_of = {name: title for title, names in panels.items() for name in names}
    for name, param in inspect.signature(command).parameters.items():
        info = param.default
        if not isinstance(info, typer.models.OptionInfo):
            continue
        info.rich_help_panel = info.rich_help_panel or panel_of.get(name)
        keys = LIBRARY_NAMES.get(name, (name,))
        text = task_default_text(keys[0], info.default, keys[1:])
        if text is not None:
            info.help = f"{info.help.rstrip()} [default: {text}]"
            info.show_default = False


dress_help(train, PANELS)


def _mpi_reducer():
    """Under mpiexec -n N (N > 1), what combines the processes' work; else None."""
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


def _display(cfg, run, steps_per_epoch: int):
    """A bar on a terminal, plain lines otherwise; by steps when a step or epoch limit is
    given, else by seconds of the time budget."""
    total = None
    if cfg.steps or cfg.epochs:
        total = min(c for c in (cfg.steps, cfg.epochs * steps_per_epoch) if c)
    by_time = total is None
    if live_progress():
        return BarDisplay(round(cfg.time_budget) if by_time else total,
                          0 if by_time else run.step, by_time)
    return LineDisplay(common.PLAIN_PROGRESS_SECONDS)


UNIT_SHORT = {"token": "tok", "example": "ex"}   # a task's unit as the speed shows it


class Progress:
    """The trainer's events as progress for every task: the start, the latest figures on
    the bar (or a plain line now and then), a line per evaluation, warnings and notices, and
    for cross-validation a line per fold. Counts and losses are per the task's unit (a
    classifier's per example, the others' per token); what an epoch is, whether a sample
    shows at evaluations and whether the loss is the metric, the task says."""

    def __init__(self, level: str):
        self.level = level
        self.display = None
        self.trainer = None
        self.state = {"ema": None, "tok": 0, "sec": 0.0, "step": None, "elapsed": 0.0}

    def attach(self, trainer) -> None:
        """Show this trainer's run (a fold's, the final model's, or the one run)."""
        if self.display is not None:
            self.display.close()
        self.trainer = trainer
        self.display = _display(trainer.cfg, trainer.run, len(trainer.batches))
        self.unit = UNIT_SHORT[trainer.task.unit]
        self.state.update(ema=None, tok=0, sec=0.0, step=None, elapsed=trainer.run.elapsed)

    def close(self) -> None:
        if self.display is not None:
            self.display.close()
            self.display = None

    def line(self, text: str) -> None:
        if self.display is not None:
            self.display.line(text)
        else:
            err.print(text)

    def status(self, e: dict) -> str:
        """The latest figures: step, epoch, smoothed training loss, speed, elapsed time."""
        st = self.state
        loss = st["ema"] if st["ema"] is not None else float("nan")
        epoch = e["epoch"] + e["window"] / e["windows"] if "window" in e else e["epoch"]
        return (f"step {e['step']:,}  epoch {epoch:.2f}  loss {loss:.3f} nats  "
                f"{st['tok'] / max(st['sec'], 1e-9):,.0f} {self.unit}/s  "
                f"{format_duration(st['elapsed'])}")

    def metric(self, loss: float) -> str:
        if self.level == "char":
            return f"{loss / math.log(2):.3f} bits/char"
        return f"{math.exp(min(loss, 700)):.1f} ppl"

    def __call__(self, e: dict) -> None:
        k, st, cfg = e["kind"], self.state, self.trainer.cfg if self.trainer else None
        if k == "start":
            st["elapsed"] = self.trainer.run.elapsed
            self.line(fit_line(f"{e['params']:,} parameters, vocabulary {e['vocab']:,}."))
            self.line(fit_line(self.trainer.task.epoch_line(
                cfg, self.trainer.model.labels, e["tokens_per_epoch"], e["windows_per_epoch"])))
        elif k == "step":
            if e["loss"] is not None:
                st["ema"] = e["loss"] if st["ema"] is None else \
                    0.95 * st["ema"] + 0.05 * e["loss"]
            st["tok"] += e["tokens"]
            st["sec"] += e["seconds"]
            st["elapsed"] = e["elapsed"]
            st["step"] = e
            self.display.step(e, self.status)
        elif k == "eval":
            if st["step"] is not None:
                self.display.evaluated(st["step"], self.status)
            self.line(self.eval_line(e))    # whole: a log keeps every figure
            if not cfg.sample_every and self.trainer.task.samples:
                s = self.trainer.progress_sample().replace("\n", " ⏎ ")
                self.line(fit_line(f"  sample: {s}"))
        elif k == "sample":
            self.line(fit_line("  sample: " + e["text"].replace("\n", " ⏎ ")))
        elif k == "warning":
            self.line(f"Warning: {e['message']}")
        elif k == "notice":
            self.line(e["message"])
        elif k == "fold_start":
            self.line(f"Fold {e['fold']}/{e['folds']}: training on {e['train']:,} examples "
                      f"(validation {e['valid']:,}), held out {e['test']:,}.")
        elif k == "fold":
            self.line(f"Fold {e['fold']}: held-out accuracy {percent(e['accuracy'])} "
                      f"({e['steps']:,} steps, {e['epochs']:.1f} epochs).")
        elif k == "final_start":
            self.line(f"Training the final model on all {e['examples']:,} examples.")

    def eval_line(self, e: dict) -> str:
        """One evaluation, whole: never cut to the terminal's width (a log keeps it all).
        Losses in nats per token (per example for a classifier), ratios in percent."""
        line = f"step {e['step']:>6}  epoch {e['epoch']:5.2f}"
        per = self.trainer.task.unit
        if e.get("train_loss") is not None:
            line += f"  train {e['train_loss']:.4f} nats/{per}"
        if self.trainer.task.metric == "valid_loss":    # the loss is the metric
            if "valid_loss" in e:
                line += f"  valid {e['valid_loss']:.4f} = {self.metric(e['valid_loss'])}"
        elif "valid_loss" in e:
            line += (f"  valid {e['valid_loss']:.4f} nats/{per}  accuracy "
                     f"{percent(e['valid_accuracy'])}")
            if "valid_f1" in e:
                line += (f"  entity F1 {percent(e['valid_f1'])} (P "
                         f"{percent(e['valid_precision'])}, R {percent(e['valid_recall'])})")
            if "valid_macro_f1" in e:
                line += f"  macro-F1 {percent(e['valid_macro_f1'])}"
        return line + (" *best" if e.get("best") else "")


def _run_training(trainer, out_file: Path, level: str) -> None:
    run = trainer.run
    if trainer.reducer is not None and not trainer.reducer.is_writer:
        _run_quietly(trainer)   # rank 0 shows the progress and the summary
        return
    progress = Progress(level)
    progress.attach(trainer)
    trainer.callback = progress
    try:
        reason, flag = _run_stoppable(trainer)
    finally:
        progress.close()
    if reason == "interrupted":
        code = 143 if flag.signum == signal.SIGTERM else 130
        err.print(f"Interrupted at step {run.step}; the run is saved in {out_file}. "
                  f"Continue it with: "
                  f"{resume_command(out_file, trainer.corpus_record, trainer.task.name)}")
        raise typer.Exit(code)
    if reason == "nothing":
        err.print(nothing_trained(trainer))
        return
    red = trainer.reducer
    if red is not None and red.calls:
        err.print(f"MPI: the all-reduce took {red.seconds:.2f} s of {run.elapsed:.2f} s "
                  f"({red.seconds / max(run.elapsed, 1e-9):.1%}; {red.calls} steps, "
                  f"{1e3 * red.seconds / red.calls:.2f} ms each) on rank 0.")
    _summary(trainer, out_file, level, reason)


def _cross_validate(corpus, task: str, opts: dict) -> None:
    """--folds K: the folds and the final model, with the progress of each."""
    progress = Progress(opts.get("level", "char"))

    def events(e: dict) -> None:   # before the first fold: what the limits mean here
        if e["kind"] == "fold_start" and e["fold"] == 1:
            progress.line(_folds_notice(opts))
        progress(e)

    flag = StopFlag()
    flag.install()
    try:
        summary = cross_validate_run(corpus, task=task, callback=events, should_stop=flag,
                                     on_trainer=progress.attach, **opts)
    finally:
        flag.uninstall()
        progress.close()
    out_file = Path(summary["final_model"])
    cv_path = out_file.with_name(out_file.stem + ".cv.json")
    cv_path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    folds = summary["folds"]
    print(f"{folds}-fold cross-validation, {summary['examples']:,} examples: held-out "
          f"accuracy {percent(summary['mean_accuracy'])} ± {percent(summary['sd_accuracy'])} "
          "(mean ± sd over folds)")
    print("per fold: " + ", ".join(percent(r["accuracy"]) for r in summary["per_fold"]))
    print(f"training {summary['train_sent_per_s']:,.0f} sentences/s, classifying "
          f"{summary['classify_sent_per_s']:,.0f} sentences/s (medians over folds)")
    print(f"Details: {cv_path}")
    print(f"Model: {out_file}")
    print(f"Next: {_next_commands(task, out_file, 'word')}")


def _folds_notice(opts: dict) -> str:
    """--folds K trains K + 1 models (the folds, then the final one), each under the limits
    given: say so, with the time that makes when the limit is a time."""
    runs = opts["folds"] + 1
    limits = [f"{option_flag(k)} {opts[k]}" for k in ("epochs", "steps", "time") if k in opts]
    head = (f"Cross-validation: {opts['folds']} folds, then the final model on all the "
            f"examples; each of the {runs} runs trains under ")
    if not limits:
        return (head + f"the default limit of {format_duration(DEFAULT_SECONDS)} (about "
                f"{format_duration(runs * DEFAULT_SECONDS)} in all). Give --time, --steps or "
                "--epochs for a shorter one.")
    total = (f" (about {format_duration(runs * parse_duration(str(opts['time'])))} in all)"
             if limits == [f"--time {opts.get('time')}"] else "")
    return head + ", ".join(limits) + total + "."


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


def _next_commands(task: str, out_file: Path, level: str) -> str:
    """What to run next with the model just written: a tagger or classifier at its default
    path is found by ``--task``, as a language model is by ``--level``."""
    model = "" if out_file == default_out(level, task) else f" --model {out_file}"
    if task == "tag":
        return (f"charlm tag{model} \"some text\"    "
                f"charlm eval DEV.conll{model or ' --task tag'}")
    if task == "classify":
        return (f"charlm classify{model} \"some text\"    "
                f"charlm eval TEST.tsv{model or ' --task classify'}")
    lvl = f" --level {level}" if level != "char" and not model else ""
    return f"charlm sample{lvl}{model}    charlm score{lvl}{model} \"some text\""


def _summary(trainer, out_file: Path, level: str, reason: str) -> None:
    run, task = trainer.run, trainer.task.name
    per = trainer.task.unit
    lines = [f"Trained {run.step:,} step{'s' if run.step != 1 else ''} "
             f"({run.tokens_seen:,} {per}s, "
             f"{format_duration(run.elapsed)}); stopped by the {reason} limit."]
    if run.best_valid is not None:
        b = run.best_valid
        if trainer.task.metric == "valid_loss":    # the loss is the metric
            extra = (f"{b / math.log(2):.3f} bits/char" if level == "char"
                     else f"perplexity {math.exp(min(b, 700)):.1f}")
            lines.append(f"Best validation loss {b:.4f} nats/token ({extra}) at step "
                         f"{run.best_step:,}.")
        else:
            what = {"valid_f1": "entity F1", "valid_accuracy": "accuracy"}
            lines.append(f"Best validation {what.get(trainer.task.metric, trainer.task.metric)}"
                         f" {percent(b)} at step {run.best_step:,}.")
    lines.append(f"Model: {out_file}")
    lines.append(f"Next: {_next_commands(task, out_file, level)}")
    print("\n".join(lines))
