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

from .. import checkpoint
from ..api import read_text
from ..errors import CharlmError, ConfigError, ModelFileError
from ..model import Model, ModelConfig
from ..render import format_duration
from .common import app, err, guarded

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
    corpus: Optional[List[Path]] = typer.Argument(
        None, help="Text files to train on (default: the bundled tiny Shakespeare)."),
    level: str = typer.Option("char", "--level", help="Tokens: char or word."),
    cell: str = typer.Option("lstm", "--cell", help="Recurrent cell: rnn, gru or lstm."),
    layers: int = typer.Option(2, "--layers", help="Stacked recurrent layers (deep RNN)."),
    hidden: int = typer.Option(512, "--hidden", help="Hidden units per layer (n_a)."),
    embed: int = typer.Option(64, "--embed", help="Embedding size; 0 = one-hot inputs."),
    activation: str = typer.Option("tanh", "--activation", help="Basic RNN: tanh or relu."),
    peephole: bool = typer.Option(False, "--peephole", help="LSTM: gates also see c<t-1>."),
    simplified: bool = typer.Option(False, "--simplified", help="GRU: no relevance gate Γr."),
    dropout: float = typer.Option(0.2, "--dropout", help="Dropout between layers, [0, 1)."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or float64."),
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
    optimizer: str = typer.Option("adam", "--optimizer", help="sgd, adagrad or adam."),
    lr: float = typer.Option(2e-3, "--lr", help="Learning rate."),
    momentum: float = typer.Option(0.0, "--momentum", help="SGD momentum."),
    schedule: str = typer.Option("constant", "--schedule",
                                 help="constant, decay (×--decay each epoch from "
                                      "--decay-after) or plateau (×--decay when validation "
                                      "does not improve)."),
    decay: float = typer.Option(0.5, "--decay", help="Learning-rate factor of the schedule."),
    decay_after: int = typer.Option(1, "--decay-after", help="Epoch where decay starts."),
    clip: float = typer.Option(5.0, "--clip",
                               help="Clipping threshold for the gradient of L = Σ_t L<t> "
                                    "(summed over the window); 0 = off."),
    clip_mode: str = typer.Option("norm", "--clip-mode",
                                  help="norm (global norm) or value (element-wise)."),
    batch: int = typer.Option(32, "--batch", help="Rows trained in parallel (m)."),
    bptt: int = typer.Option(128, "--bptt", help="Steps per truncated-BPTT window (T)."),
    seed: int = typer.Option(1234, "--seed", help="Random seed: same seed, same model."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Stop after this many epochs."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Stop after this many steps."),
    time_limit: Optional[str] = typer.Option(
        None, "--time", help="Stop after this much training time, e.g. 90s, 10m, 1h30m "
                             "(default 10m when no --epochs or --steps is given)."),
    valid: Optional[Path] = typer.Option(None, "--valid", help="A validation text file."),
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
                                help="Continue the run saved in --out exactly where it "
                                     "stopped."),
):
    """Train a language model on text files (one sequence per line by default)."""
    from ..train import Trainer, TrainConfig, log_path, parse_duration, prepare_corpus

    reducer = _mpi_reducer()   # None unless started by mpiexec -n N
    writer = reducer is None or reducer.is_writer
    out_file = out_path or Path("models") / f"{level}.npz"
    if out_file.is_dir():
        raise ConfigError(f"--out {out_file} is a directory. Give a file name, e.g. "
                          f"--out {out_file / (level + '.npz')}.")
    limits = {"epochs": epochs or 0, "steps": steps or 0,
              "time_budget": parse_duration(time_limit) if time_limit else 0.0}
    for name in ("epochs", "steps"):
        if limits[name] < 0:
            raise ConfigError(f"--{name} must not be negative.")
    if resume and force:
        raise ConfigError("--resume continues the file that --force would replace. "
                          "Use one of them.")
    if resume:
        if not out_file.exists():
            raise ModelFileError(f"Nothing to resume: no model file at {out_file}. "
                                 "Check --out, or drop --resume to start a new run.")
        model, meta, arrays = checkpoint.load(out_file)
        if not meta or "run" not in meta:
            raise ModelFileError(f"{out_file} holds no training state to resume.")
        tcfg = TrainConfig.from_json(meta["config"])
        given = {k: v for k, v in limits.items() if v}
        if given:  # new limits replace the old ones; the rest of the run is as it was
            tcfg.epochs, tcfg.steps, tcfg.time_budget = (given.get("epochs", 0),
                                                         given.get("steps", 0),
                                                         given.get("time_budget", 0.0))
        corpus_texts, valid_text = _corpus_texts(corpus, encoding, valid)
        data = prepare_corpus(corpus_texts, tcfg, valid_text)
        if data.vocab.tokens != model.vocab.tokens:
            raise ConfigError("This corpus gives a different vocabulary from the one the "
                              f"saved run in {out_file} was trained with. Resume with the "
                              "same corpus and options.")
        trainer = Trainer(model, data, tcfg, out_file, reducer=reducer)
        trainer.restore(meta, arrays)
    else:
        if out_file.exists() and not force:
            raise CharlmError(f"{out_file} already exists. Continue it with --resume, replace "
                              "it with --force (the old file is kept as .bak), or choose "
                              "another --out.")
        if not any(limits.values()):
            limits["time_budget"] = 600.0
        mcfg = ModelConfig(cell=cell, layers=layers, hidden=hidden, embed=embed,
                           activation=activation, peephole=peephole, simplified=simplified,
                           dropout=dropout, dtype=dtype)
        mcfg.validate()
        tcfg = TrainConfig(level=level, prose=prose, lowercase=lowercase,
                           vocab_size=vocab_size, min_count=min_count, unk_token=unk_token,
                           optimizer=optimizer, lr=lr, momentum=momentum, schedule=schedule,
                           decay=decay, decay_after=decay_after, clip=clip,
                           clip_mode=clip_mode, batch=batch, bptt=bptt, seed=seed,
                           valid_fraction=valid_fraction, eval_every=eval_every,
                           eval_batch=eval_batch, sample_every=sample_every, **limits)
        tcfg.validate()
        corpus_texts, valid_text = _corpus_texts(corpus, encoding, valid)
        data = prepare_corpus(corpus_texts, tcfg, valid_text)
        if len(data.vocab) == 3:  # degenerate but trainable: see prepare_corpus
            err.print(f"Warning: the vocabulary has one token besides <EOS> and <UNK> "
                      f"({data.vocab.tokens[2]!r}); the model can learn little more than "
                      "where sequences end.")
        model = Model.create(mcfg, data.vocab, np.random.default_rng(seed))
        if out_file.exists() and writer:
            backup = out_file.with_name(out_file.name + ".bak")
            out_file.replace(backup)
            err.print(f"Replacing {out_file}; the old file is kept as {backup}.")
            old_log = log_path(out_file)
            if old_log.exists():   # the new run starts its own log; keep the old one too
                old_log.replace(old_log.with_name(old_log.name + ".bak"))
        trainer = Trainer(model, data, tcfg, out_file, reducer=reducer)
    if writer:
        _check_writable(out_file)
    _run_training(trainer, out_file, level)


def _mpi_reducer():
    """Under mpiexec -n N (N > 1), what combines the processes' work; else None."""
    from ..mpienv import under_mpi
    if not under_mpi():
        return None
    from ..distributed import Reducer
    reducer = Reducer()
    if reducer.is_writer:
        err.print(f"MPI: {reducer.size} processes share each batch; this one (rank 0) "
                  "shows the progress and writes the model file.")
    return reducer


def _check_writable(out_file: Path) -> None:
    """Fail now, not after hours of training, when the model file cannot be written."""
    import os
    import tempfile
    try:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out_file.name}.", suffix=".tmp",
                                   dir=out_file.parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        parent = next((p for p in out_file.parents if p.exists()), None)
        why = (f"{parent} is not a directory" if parent is not None and not parent.is_dir()
               else e.strerror or str(e))
        raise ModelFileError(f"Cannot write the model file {out_file} ({why}). Choose another "
                             "--out, or check the directory's permissions.") from None


def _corpus_texts(corpus, encoding, valid):
    from ..bundled import bundled
    if not corpus:
        texts = [bundled().read_text(encoding="utf-8")]
        err.print("Training on the bundled corpus: tiny Shakespeare (1.1 MB).")
    else:
        texts = [read_text(p, encoding) for p in corpus]
    return texts, (read_text(valid, encoding) if valid else None)


def _run_training(trainer, out_file: Path, level: str) -> None:
    cfg, run = trainer.cfg, trainer.run
    if trainer.reducer is not None and not trainer.reducer.is_writer:
        _run_quietly(trainer)   # rank 0 shows the progress and the summary
        return
    unit = "bits/char" if level == "char" else "ppl"

    def metric(loss):
        return loss / math.log(2) if level == "char" else math.exp(min(loss, 700))

    total = None
    if cfg.steps or cfg.epochs:
        cands = [c for c in (cfg.steps, cfg.epochs * len(trainer.batches)) if c]
        total = min(cands)
    by_time = total is None
    bar = tqdm(total=round(cfg.time_budget) if by_time else total, initial=0 if by_time else
               run.step, unit="s" if by_time else "step", file=sys.stderr, dynamic_ncols=True,
               leave=True, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}"
                                      "{postfix}]")
    state = {"ema": None, "tok": 0, "sec": 0.0, "last": time.perf_counter()}

    def callback(e: dict) -> None:
        k = e["kind"]
        if k == "start":
            bar.write(f"{e['params']:,} parameters, vocabulary {e['vocab']}, "
                      f"{e['tokens_per_epoch']:,} tokens per epoch in {e['windows_per_epoch']} "
                      f"windows of {cfg.batch}×{cfg.bptt}.", file=sys.stderr)
        elif k == "step":
            if e["loss"] is not None:
                state["ema"] = e["loss"] if state["ema"] is None else \
                    0.95 * state["ema"] + 0.05 * e["loss"]
            state["tok"] += e["tokens"]
            state["sec"] += e["seconds"]
            if by_time:
                bar.n = min(int(e["elapsed"]), bar.total)
                bar.refresh() if time.perf_counter() - state["last"] > 0.5 else None
            else:
                bar.update(1)
            if time.perf_counter() - state["last"] > 0.5:
                state["last"] = time.perf_counter()
                loss = state["ema"] if state["ema"] is not None else float("nan")
                bar.set_postfix_str(
                    f"ep {e['epoch'] + e['window'] / e['windows']:.2f} step {e['step']} "
                    f"loss {loss:.3f} {unit} {metric(loss):.3f} "
                    f"{state['tok'] / max(state['sec'], 1e-9):,.0f} tok/s", refresh=True)
        elif k == "eval":
            line = f"step {e['step']:>6}  epoch {e['epoch']:.2f}"
            if e.get("train_loss") is not None:
                line += f"  train {e['train_loss']:.4f}"
            if "valid_loss" in e:
                line += (f"  valid {e['valid_loss']:.4f} nats ({unit} "
                         f"{metric(e['valid_loss']):.3f}){'  *best' if e.get('best') else ''}")
            bar.write(line, file=sys.stderr)
            if not cfg.sample_every:
                s = trainer.progress_sample().replace("\n", " ⏎ ")
                bar.write(f"  sample: {s[:160]}", file=sys.stderr)
        elif k == "sample":
            bar.write("  sample: " + e["text"].replace("\n", " ⏎ ")[:160], file=sys.stderr)
        elif k == "warning":
            bar.write(f"Warning: {e['message']}", file=sys.stderr)

    trainer.callback = callback
    flag = StopFlag()
    trainer.should_stop = flag
    flag.install()
    try:
        # Overflow in a diverging step is handled (undone, reported as a Warning line) by the
        # trainer; numpy's own multi-line RuntimeWarnings would only add noise.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            reason = trainer.run_loop()
    finally:
        flag.uninstall()
        bar.close()
    if reason == "interrupted":
        code = 143 if flag.signum == signal.SIGTERM else 130
        err.print(f"Interrupted at step {run.step}; the run is saved in {out_file}. "
                  f"Continue it with: charlm train ... --resume --out {out_file}")
        raise typer.Exit(code)
    red = trainer.reducer
    if red is not None and red.calls:
        err.print(f"MPI: the all-reduce took {red.seconds:.2f} s of {run.elapsed:.2f} s "
                  f"({red.seconds / max(run.elapsed, 1e-9):.1%}; {red.calls} steps, "
                  f"{1e3 * red.seconds / red.calls:.2f} ms each) on rank 0.")
    _summary(trainer, out_file, level, reason)


def _run_quietly(trainer) -> None:
    """A rank other than 0: train, stop when the ranks agree to, show nothing."""
    flag = StopFlag()
    trainer.should_stop = flag
    flag.install()
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            reason = trainer.run_loop()
    finally:
        flag.uninstall()
    if reason == "interrupted":
        raise typer.Exit(143 if flag.signum == signal.SIGTERM else 130)


def _summary(trainer, out_file: Path, level: str, reason: str) -> None:
    run = trainer.run
    lines = [f"Trained {run.step:,} step{'s' if run.step != 1 else ''} "
             f"({run.tokens_seen:,} tokens, "
             f"{format_duration(run.elapsed)}); stopped by the {reason} limit."]
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
