"""The command line: parse options, call the library, render results, turn errors into exits.

Only this module imports typer, rich and tqdm. Results go to stdout; progress, warnings and
errors to stderr. A ``CharlmError`` becomes ``Error: <message>`` and its exit code (1 for bad
data or files, 2 for bad usage); a traceback only with ``--debug``.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from tqdm import tqdm

from . import __version__, checkpoint
from .api import decode_text, read_text
from .errors import CharlmError, ConfigError, CorpusError, ModelFileError
from .model import Model, ModelConfig
from .render import format_duration, format_prob, sparkline
from .vocab import EOS_ID, UNK_ID

HELP = """\
Train character- and word-level recurrent language models (RNN, GRU, LSTM) on a pure NumPy
core, score how probable a sentence is, and sample new text.

\b
A first session:
  charlm train corpus.txt                         # char-level LSTM -> models/char.npz
  charlm sample --level char                      # a new text from it
  charlm score "the apple and pear salad"         # P(sentence) as chained conditionals
  charlm train --level word --prose book.txt      # a word-level model -> models/word.npz
  charlm eval held-out.txt                        # perplexity / bits per character
  charlm info                                     # what a model file holds

With no corpus, `charlm train` uses the bundled tiny Shakespeare. Every command has -h.
"""

app = typer.Typer(help=HELP, add_completion=False, no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  pretty_exceptions_enable=False, rich_markup_mode=None)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
DEBUG = {"on": False}


def fail(e: CharlmError) -> None:
    if DEBUG["on"]:
        raise e
    fail_line(str(e), e.exit_code)


def fail_line(message: str, code: int) -> None:
    """Print ``Error: message`` as exactly one line on stderr and exit with ``code``."""
    err.print(Text("Error: " + " ".join(message.splitlines()), style="red"))
    raise typer.Exit(code)


def guarded(fn):
    """Run a command body, turning every error into one line and an exit code: charlm's own
    errors, file errors, memory, Ctrl-C, and (as a last resort) unexpected exceptions. With
    --debug the exception propagates with its traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter):  # typer's own: as typer does
            raise
        except CharlmError as e:
            fail(e)
        except BaseException as e:  # noqa: B036  (KeyboardInterrupt too: no traceback)
            if DEBUG["on"] or isinstance(e, SystemExit):
                raise
            if isinstance(e, BrokenPipeError):  # `charlm sample | head`: the reader left
                import os
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())  # no second error at interpreter exit
                raise typer.Exit(141)
            if isinstance(e, KeyboardInterrupt):
                err.print("Interrupted.")
                raise typer.Exit(130)
            if isinstance(e, MemoryError):
                fail_line("Out of memory. Use a smaller model (--hidden, --layers, "
                          "--vocab-size), a smaller --batch or --bptt, or a smaller file.", 1)
            if isinstance(e, OSError):
                where = f": {e.filename}" if e.filename else ""
                fail_line(f"{e.strerror or e}{where}. Check the path, its permissions and "
                          "the free disk space.", 1)
            fail_line(f"Unexpected {type(e).__name__}: {e}. This is a bug in charlm: run the "
                      "command again with --debug to see the traceback, and report it.", 1)
    return wrapper


def version_cb(value: bool):
    if value:
        print(f"charlm {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=version_cb, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
):
    DEBUG["on"] = debug


# ---------------------------------------------------------------- model files
LEVEL_HELP = "Which default model to use: models/<level>.npz."
MODEL_HELP = "A model file (overrides --level)."


def model_path(level: str, model: Optional[Path]) -> Path:
    if level not in ("char", "word"):
        raise ConfigError(f"Unknown level {level!r}. Use char or word.")
    return model if model is not None else Path("models") / f"{level}.npz"


def open_model(level: str, model: Optional[Path]):
    path = model_path(level, model)
    if not path.exists():
        hint = ("charlm train corpus.txt" if level == "char"
                else "charlm train --level word corpus.txt")
        if model is not None:
            raise ModelFileError(f"No model file at {path}. Check the path, or make one with "
                                 f"`{hint} --out {path}`.")
        raise ModelFileError(f"No {level} model at {path}. Train one first: `{hint}`.")
    m, meta, _ = checkpoint.load(path)
    return m, meta, path


def arg_text(s: str, what: str) -> str:
    """Text from the command line: bytes the terminal's encoding could not decode arrive as
    lone surrogates, which are refused here rather than failing later."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise CorpusError(f"The {what} {s!r} is not valid UTF-8 (character {e.start + 1} "
                          "could not be decoded). Use UTF-8 text, and check the terminal's "
                          "locale (e.g. LANG=C.UTF-8).") from None
    return s


def read_stdin(encoding: str = "utf-8") -> str:
    buf = getattr(sys.stdin, "buffer", None)
    if buf is None:
        return sys.stdin.read()
    return decode_text(buf.read(), "standard input", encoding)


def emit_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


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
    clip: float = typer.Option(5.0, "--clip", help="Gradient clipping threshold; 0 = off."),
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
    from .train import Trainer, TrainConfig, log_path, parse_duration, prepare_corpus

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
        trainer = Trainer(model, data, tcfg, out_file)
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
        if out_file.exists():
            backup = out_file.with_name(out_file.name + ".bak")
            out_file.replace(backup)
            err.print(f"Replacing {out_file}; the old file is kept as {backup}.")
            old_log = log_path(out_file)
            if old_log.exists():   # the new run starts its own log; keep the old one too
                old_log.replace(old_log.with_name(old_log.name + ".bak"))
        trainer = Trainer(model, data, tcfg, out_file)
    _check_writable(out_file)
    _run_training(trainer, out_file, level)


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
    from .bundled import bundled
    if not corpus:
        texts = [bundled().read_text(encoding="utf-8")]
        err.print("Training on the bundled corpus: tiny Shakespeare (1.1 MB).")
    else:
        texts = [read_text(p, encoding) for p in corpus]
    return texts, (read_text(valid, encoding) if valid else None)


def _run_training(trainer, out_file: Path, level: str) -> None:
    cfg, run = trainer.cfg, trainer.run
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
    _summary(trainer, out_file, level, reason)


def _summary(trainer, out_file: Path, level: str, reason: str) -> None:
    run = trainer.run
    lines = [f"Trained {run.step:,} steps ({run.tokens_seen:,} tokens, "
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


# ----------------------------------------------------------------------- sample
@app.command()
@guarded
def sample(
    level: str = typer.Option("char", "--level", help=LEVEL_HELP),
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    num: int = typer.Option(1, "-n", "--num", help="How many samples."),
    length: Optional[int] = typer.Option(
        None, "--length", help="Most tokens per sample [default: 200 chars or 50 words]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (same seed, same text)."),
    temperature: float = typer.Option(1.0, "--temperature",
                                      help="Softmax temperature; 0 = always the likeliest."),
    top_k: int = typer.Option(0, "--top-k", help="Draw only from the k likeliest; 0 = all."),
    top_p: float = typer.Option(1.0, "--top-p",
                                help="Draw from the smallest set with this much probability."),
    prime: Optional[str] = typer.Option(None, "--prime", help="Text the sample continues."),
    allow_unk: bool = typer.Option(False, "--allow-unk", help="Let <UNK> be drawn."),
    no_stop: bool = typer.Option(False, "--no-stop",
                                 help="Go on through <EOS> (as a line break) to --length."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per sample."),
):
    """Sample new text: draw each token from the softmax and feed it back."""
    from .generate import check_options, sample as draw

    m, meta, path = open_model(level, model)
    vocab = m.vocab
    if num < 1:
        raise ConfigError(f"-n/--num must be at least 1 (got {num}).")
    if seed is not None and seed < 0:
        raise ConfigError(f"--seed must be 0 or more (got {seed}).")
    length = length if length is not None else (200 if vocab.level == "char" else 50)
    check_options(temperature, top_k, top_p, length)
    prime_ids = None
    if prime:
        prime = arg_text(prime, "--prime text")
        oov = vocab.oov_tokens(prime)
        if oov:
            err.print(f"Warning: the prime has {len(oov)} token(s) outside the vocabulary, "
                      f"read as <UNK>: {' '.join(repr(t) for t in oov[:10])}")
        prime_ids = vocab.encode(prime)
        bptt = (meta.get("config") or {}).get("bptt")
        if bptt and len(prime_ids) > bptt:
            err.print(f"Warning: the prime is {len(prime_ids)} tokens, longer than the "
                      f"{bptt}-step windows the model was trained on; it may lose track of "
                      "its start.")
    rng = np.random.default_rng(seed)
    for i in range(num):
        prefix = prime or ""
        shown = {"text": ""}

        def on_token(tok, ids=[]):  # noqa: B006  (streams the decoded text as it grows)
            ids.append(tok)
            text = vocab.decode(ids)
            sys.stdout.write(text[len(shown["text"]):])
            sys.stdout.flush()
            shown["text"] = text

        if not as_json:
            sys.stdout.write(prefix)
        s = draw(m, rng, length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                 prime_ids=prime_ids, allow_unk=allow_unk, stop_at_eos=not no_stop,
                 on_token=None if as_json else on_token)
        text = vocab.decode(s.ids)
        if as_json:
            emit_json({"index": i, "text": prefix + text, "prime": prime,
                       "tokens": [vocab.tokens[t] for t in s.ids], "n_tokens": len(s.ids),
                       "log_prob": s.log_prob, "stopped_at_eos": s.stopped_at_eos,
                       "seed": seed})
        else:
            sys.stdout.write("\n")
            if num > 1 and i < num - 1 and vocab.level == "char" and not no_stop:
                pass
            sys.stdout.flush()


# ------------------------------------------------------------------------ score
@app.command()
@guarded
def score(
    sentences: Optional[List[str]] = typer.Argument(None, help="Sentences to score."),
    file: Optional[Path] = typer.Option(None, "--file",
                                        help="Score each line of a file ('-' = stdin)."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of --file."),
    level: str = typer.Option("char", "--level", help=LEVEL_HELP),
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    base: str = typer.Option("e", "--base", help="Logarithm base: e, 2 or 10."),
    per_token: bool = typer.Option(False, "--per-token",
                                   help="Show every P(y<t> | ...) and its surprisal."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per sentence."),
):
    """How probable is a sentence? P(y<1>) · P(y<2>|y<1>) · … · P(<EOS>|…)."""
    from .score import score_many

    texts = [arg_text(t, "sentence") for t in sentences or []]
    if file is not None:
        raw = read_stdin(encoding) if str(file) == "-" else read_text(file, encoding)
        texts += [t for t in raw.split("\n") if t.strip()]
    elif texts == ["-"]:
        texts = [t for t in read_stdin(encoding).split("\n") if t.strip()]
    if not texts:
        raise ConfigError("Nothing to score. Give a sentence, or --file FILE.")
    if base not in ("e", "2", "10"):
        raise ConfigError(f"--base must be e, 2 or 10 (got {base}).")
    logb = {"e": 1.0, "2": math.log(2), "10": math.log(10)}[base]
    m, _, _ = open_model(level, model)
    results = list(score_many(m, texts))
    for r in results:
        if not r.text.strip():
            err.print("Warning: an empty sentence scores only its <EOS>.")
        elif r.n_oov == r.n_tokens - 1:
            err.print(f"Warning: every token of {r.text!r} is outside the vocabulary; it is "
                      "scored through <UNK>.")
        elif r.n_oov:
            oov = m.vocab.oov_tokens(r.text)
            err.print(f"Warning: {r.n_oov} token(s) of {r.text!r} are outside the vocabulary "
                      f"and scored as <UNK>: {' '.join(repr(t) for t in oov[:10])}")
    if as_json:
        for r in results:
            obj = {"text": r.text, "log_prob": r.log_prob / logb, "base": base,
                   "probability": math.exp(r.log_prob), "perplexity": r.perplexity,
                   "n_tokens": r.n_tokens, "n_oov": r.n_oov}
            if per_token:
                obj["tokens"] = [{"token": m.vocab.tokens[i], "log_prob": float(lp) / logb,
                                  "surprisal_bits": float(-lp / math.log(2))}
                                 for i, lp in zip(r.ids, r.log_probs)]
            emit_json(obj)
        return
    lname = {"e": "ln", "2": "log2", "10": "log10"}[base]
    if len(results) == 1:
        r = results[0]
        out.print(Text(f"P({r.text}) = {format_prob(r.log_prob)}"))  # Text: no markup
        out.print(f"{lname} P = {r.log_prob / logb:.4f}   perplexity {r.perplexity:.3f} per "
                  f"token   {r.n_tokens} tokens (with <EOS>)   {r.n_oov} OOV")
    else:
        ranked = sorted(results, key=lambda r: -r.log_prob)
        best = ranked[0].log_prob
        table = Table(show_edge=False, pad_edge=False)
        for col, j in (("#", "right"), ("sentence", "left"), ("P", "right"),
                       (f"{lname} P", "right"), ("ppl/token", "right"), ("tokens", "right"),
                       ("OOV", "right"), ("× best", "right")):
            table.add_column(col, justify=j)
        for k, r in enumerate(ranked, 1):
            table.add_row(str(k), Text(r.text), format_prob(r.log_prob),
                          f"{r.log_prob / logb:.3f}", f"{r.perplexity:.3f}", str(r.n_tokens),
                          str(r.n_oov), format_prob(r.log_prob - best))
        out.print(table)
    if per_token:
        for r in results:
            _per_token(m, r)


def _per_token(m, r) -> None:
    line = Text()
    table = Table(title=Text(r.text), show_edge=False)
    table.add_column("t", justify="right")
    table.add_column("token")
    table.add_column("P(y<t> | …)", justify="right")
    table.add_column("surprisal (bits)", justify="right")
    for t, (i, lp) in enumerate(zip(r.ids, r.log_probs), 1):
        tok = m.vocab.tokens[i]
        bits = -lp / math.log(2)
        heat = min(1.0, bits / 12.0)  # 0 bits green ... 12+ bits red
        color = f"rgb({int(255 * heat)},{int(200 * (1 - heat))},60)"
        shown = "⏎" if i == EOS_ID else ("·" if tok == " " else tok)
        line.append(shown + ("" if m.vocab.level == "char" else " "), style=f"bold {color}")
        table.add_row(str(t), shown, f"{math.exp(lp):.4g}", f"{bits:.2f}",
                      style=color if i != UNK_ID else f"{color} italic")
    out.print(table)
    out.print(line)


# ------------------------------------------------------------------------- eval
@app.command("eval")
@guarded
def eval_cmd(
    file: Path = typer.Argument(..., help="A held-out text file, one sequence per line."),
    level: str = typer.Option("char", "--level", help=LEVEL_HELP),
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the file."),
    batch: int = typer.Option(64, "--batch", help="Sequences scored in parallel."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
):
    """Perplexity (and bits per character) of a held-out file."""
    from .score import score_many

    if batch < 1:
        raise ConfigError(f"--batch must be at least 1 (got {batch}).")
    m, meta, _ = open_model(level, model)
    text = read_text(file, encoding)
    from .vocab import split_sequences
    lines = list(split_sequences(text))
    if not any(line.strip() for line in lines):
        raise CorpusError(f"{file} has no text to evaluate. Give a non-empty file.")
    total_nll = oov_nll = 0.0
    n_tok = n_oov = n_chars = 0
    with tqdm(total=len(lines), unit="line", file=sys.stderr, disable=len(lines) < 2000,
              leave=False) as bar:
        for r in score_many(m, lines, batch, on_batch=bar.update):
            total_nll -= r.log_prob
            n_tok += r.n_tokens
            unk = r.ids == UNK_ID
            n_oov += int(unk.sum())
            oov_nll -= float(r.log_probs[unk].sum())
            n_chars += len(r.text) + 1
    mean = total_nll / n_tok
    res = {"file": str(file), "tokens": n_tok, "oov": n_oov, "sequences": len(lines),
           "nll": mean, "perplexity": math.exp(min(mean, 700)),
           "perplexity_without_oov": (math.exp(min((total_nll - oov_nll) / (n_tok - n_oov),
                                                   700)) if n_tok > n_oov else None),
           "bits_per_char": total_nll / math.log(2) / n_chars}
    if as_json:
        emit_json(res)
        return
    out.print(f"{escape(str(file))}: {len(lines):,} sequences, {n_tok:,} tokens (with <EOS>), "
              f"{n_oov:,} OOV")
    out.print(f"mean NLL {mean:.4f} nats/token   perplexity {res['perplexity']:.3f}"
              + (f"   (without OOV positions {res['perplexity_without_oov']:.3f})"
                 if res["perplexity_without_oov"] is not None and n_oov else ""))
    out.print(f"bits per character {res['bits_per_char']:.4f}")


# ------------------------------------------------------------------------- info
@app.command()
@guarded
def info(
    level: str = typer.Option("char", "--level", help=LEVEL_HELP),
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    plot: Optional[Path] = typer.Option(None, "--plot",
                                        help="Write training/validation curves to a PNG "
                                             "(needs matplotlib)."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
):
    """What a model file holds: config, vocabulary, parameters, training history."""
    m, meta, path = open_model(level, model)
    run = meta.get("run") or {}
    layers = {}
    for k, v in m.params.items():
        group = k.split(".")[0] if "." in k else ("embedding" if k == "E" else "output")
        layers[group] = layers.get(group, 0) + int(v.size)
    hist = run.get("history") or []
    res = {"path": str(path), "config": m.config.to_json(), "level": m.vocab.level,
           "vocab_size": len(m.vocab), "vocab_sample": m.vocab.tokens[:20],
           "parameters": m.n_params(), "parameters_per_layer": layers,
           "train_config": meta.get("config"),
           "steps": run.get("step"), "epochs": run.get("epoch"),
           "tokens_seen": run.get("tokens_seen"), "seconds": run.get("elapsed"),
           "best_valid_loss": run.get("best_valid"), "best_step": run.get("best_step"),
           "finished": run.get("finished"), "history": hist}
    if plot is not None:
        _plot(hist, plot)
    if as_json:
        emit_json(res)
        return
    c = m.config
    shape = f"{c.layers}×{c.cell.upper()} {c.hidden}"
    shape += {"rnn": f" ({c.activation})", "gru": " simplified" if c.simplified else "",
              "lstm": " peephole" if c.peephole else ""}[c.cell]
    out.print(f"[bold]{escape(str(path))}[/bold]  {m.vocab.level}-level {shape}, "
              f"{'embedding ' + str(c.embed) if c.embed else 'one-hot inputs'}, "
              f"dropout {c.dropout}, {c.dtype}")
    toks = " ".join(repr(t)[1:-1] if len(t) == 1 else t for t in m.vocab.tokens[:20])
    out.print(f"vocabulary {len(m.vocab):,} tokens: {toks} …")
    out.print(f"parameters {m.n_params():,}: "
              + ", ".join(f"{k} {v:,}" for k, v in layers.items()))
    if run:
        bv = run.get("best_valid")
        out.print(f"trained {run.get('step', 0):,} steps, {run.get('epoch', 0)} full epochs, "
                  f"{run.get('tokens_seen', 0):,} tokens, "
                  f"{format_duration(run.get('elapsed', 0.0))}"
                  + (f"; best validation {bv:.4f} nats/token at step {run.get('best_step')}"
                     if bv is not None else ""))
        tl = [h.get("train_loss") for h in hist if h.get("train_loss") is not None]
        vl = [h.get("valid_loss") for h in hist if h.get("valid_loss") is not None]
        if tl:
            out.print(f"train loss {tl[0]:.3f} {sparkline(tl)} {tl[-1]:.3f}")
        if vl:
            out.print(f"valid loss {vl[0]:.3f} {sparkline(vl)} {vl[-1]:.3f}")
    else:
        out.print("no training state in this file")


def _plot(hist: list, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CharlmError("--plot needs matplotlib, which is not installed. Install it with "
                          "`pip install 'charlm[plot]'` (or `pip install matplotlib`).")
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("train_loss", "train"), ("valid_loss", "validation")):
        pts = [(h["step"], h[key]) for h in hist if h.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    err.print(f"Wrote {path}")


# -------------------------------------------------------------------- gradcheck
@app.command()
@guarded
def gradcheck(
    seed: int = typer.Option(0, "--seed", help="Seed of the random shapes and values."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per check."),
):
    """Check every cell's backward pass against numerical gradients (float64)."""
    from .gradcheck import TOLERANCE, run_all

    results = list(run_all(seed))
    failed = [r for r in results if not r.passed]
    if as_json:
        for r in results:
            emit_json({"component": r.component, "param": r.param,
                       "max_rel_error": r.max_rel_error, "passed": r.passed})
    else:
        table = Table(title=f"gradient checks (float64, five-point centred differences, "
                            f"tolerance {TOLERANCE:g})", show_edge=False)
        for col in ("component", "parameter", "max rel. error", "result"):
            table.add_column(col, justify="right" if col == "max rel. error" else "left")
        for r in results:
            table.add_row(r.component, r.param, f"{r.max_rel_error:.2e}",
                          Text("pass", style="green") if r.passed else
                          Text("FAIL", style="bold red"))
        out.print(table)
        out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


# ------------------------------------------------------------------------ bench
@app.command()
@guarded
def bench(
    config: Optional[List[str]] = typer.Option(
        None, "--config", help="C1 (char 2×256), C2 (char 2×512), W1 (word 10k, 2×200), MC "
                               "(min-char-rnn) [default: all]."),
    cell: Optional[List[str]] = typer.Option(None, "--cell",
                                             help="rnn, gru, lstm [default: all]."),
    mode: Optional[List[str]] = typer.Option(None, "--mode",
                                             help="train, eval, generate [default: all]."),
    steps: int = typer.Option(20, "--steps", help="Timed steps per measurement (median)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per measurement."),
):
    """Throughput of this machine: train / eval / generate tokens per second."""
    from .bench import CONFIGS, default_plan, measure, sgemm_peak

    configs = config or list(CONFIGS)
    for name, allowed, opts in (("--config", CONFIGS, configs),
                                ("--cell", ("rnn", "gru", "lstm"), cell or []),
                                ("--mode", ("train", "eval", "generate"), mode or [])):
        bad = [o for o in opts if o not in allowed]
        if bad:
            raise ConfigError(f"Unknown {name} {bad[0]!r}. Use one of: {', '.join(allowed)}.")
    if steps < 1:
        raise ConfigError(f"--steps must be at least 1 (got {steps}).")
    plan = default_plan(configs, cell or ["rnn", "gru", "lstm"],
                        mode or ["train", "eval", "generate"])
    peak = sgemm_peak()
    results = []
    for spec in tqdm(plan, desc="bench", unit="run", file=sys.stderr, leave=False):
        r = measure({**spec, "steps": steps})
        r["pct_of_peak"] = 100.0 * r["gflops"] / peak
        r["peak_sgemm_gflops"] = peak
        results.append(r)
        if as_json:
            emit_json(r)
    if as_json:
        return
    table = Table(title=f"charlm {__version__} throughput (NumPy {np.__version__}, float32 "
                        f"matmul peak {peak:.0f} GFLOP/s)", show_edge=False)
    for col in ("config", "cell", "mode", "tokens/s", "GFLOP/s", "% of peak", "peak RSS"):
        table.add_column(col, justify="left" if col in ("config", "cell", "mode") else "right")
    for r in results:
        table.add_row(r["config"], r["cell"], r["mode"], f"{r['tokens_per_s']:,.0f}",
                      f"{r['gflops']:.1f}", f"{r['pct_of_peak']:.0f}%",
                      f"{r['peak_rss_mb']:.0f} MB")
    out.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
