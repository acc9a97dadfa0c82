"""What every command shares: the typer app, the two consoles, and how errors look.

Results go to stdout; progress, warnings and errors to stderr. A ``CharlmError`` becomes
``Error: <message>`` and its exit code (1 for bad data or files, 2 for bad usage); a traceback
only with ``--debug``.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path
from typing import Literal, Optional

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from ..errors import CharlmError, ConfigError, CorpusError, ModelFileError
from ..tasks.metrics import significant
from ..text.files import decode_text, read_text
from ..training import checkpoint
from ..training.runs import default_out
from ..version import __version__

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

\b
The course's other types of RNNs, and its argument about distance:
  charlm train --task tag --bidirectional         # a BRNN tagger (bundled tweets)
  charlm tag "Harry Potter met Hermione Granger"  # a label per word, the entities found
  charlm train --task classify --level word       # many-to-one (bundled reviews)
  charlm classify "There is nothing to like here."
  charlm gradients --cell rnn,gru,lstm            # how far back the gradient reaches
  charlm pairs --model models/char.npz            # "the cats ... were" or "... was"?

With no corpus, `charlm train` uses a bundled corpus. Every command has -h.
"""

# The choices of options that take one of a few words: typer lists them in the help
# (`--level <char|word>`) and refuses anything else as a usage error.
Level = Literal["char", "word"]
Base = Literal["e", "2", "10"]
Cell = Literal["rnn", "gru", "lstm"]
Activation = Literal["tanh", "relu"]
Dtype = Literal["float32", "float64"]
Optimizer = Literal["sgd", "adagrad", "adam"]
Schedule = Literal["constant", "decay", "plateau"]
ClipMode = Literal["norm", "value"]
Task = Literal["lm", "tag", "classify"]
Tokenizer = Literal["words", "whitespace"]
Pool = Literal["last", "mean", "max"]
LabelColumn = Literal["auto", "first", "last"]


def strip_debug(args: list[str]) -> tuple[list[str], bool]:
    """``--debug`` may stand anywhere before a ``--``: take it out of ``args`` (the group's
    own option then reads it at the front). Returns (the other arguments, whether it was
    there)."""
    end = args.index("--") if "--" in args else len(args)
    kept = [a for a in args[:end] if a != "--debug"]
    return kept + args[end:], len(kept) < end


class CharlmGroup(TyperGroup):
    """The app's command group: ``--debug`` anywhere, and usage errors as one line."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        args, debug = strip_debug(list(sys.argv[1:] if args is None else args))
        STDIN_READ["by"] = None
        try:
            rv = super().main((["--debug"] if debug else []) + args, prog_name,
                              complete_var, standalone_mode=False, **extra)
        except typer.Abort:   # end of input at a prompt (charlm has none), as typer says it
            err.print("Aborted!")
            rv = 1
        except typer.TyperException as e:   # typer's usage errors (exit code 2)
            if type(e).__name__ == "NoArgsIsHelpError":   # bare `charlm`: the help, as typer
                e.show()
            else:
                usage_error_line(e, self._command_path(args, prog_name))
            rv = e.exit_code
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)

    def _command_path(self, args: list[str], prog_name: str | None) -> str:
        """``charlm train`` for a usage error in ``charlm ... train ...`` whose context is
        gone (an option missing its value)."""
        prog = prog_name or "charlm"
        sub = next((a for a in args if a in self.commands), None)
        return f"{prog} {sub}" if sub else prog


def usage_error_line(e, command_path: str) -> None:
    """A usage error as one line on stderr: ``Error: <what>. See 'charlm train -h'.``"""
    msg = " ".join(e.format_message().split()).replace("Value error, ", "")
    if not msg.endswith((".", "?")):
        msg += "."
    ctx = getattr(e, "ctx", None)
    path = ctx.command_path if ctx is not None else command_path
    err.print(Text(f"Error: {msg} See '{path} -h'.", style="red"))


class PanelCommand(TyperCommand):
    """A command whose --help lists its options in panels (each option's
    ``rich_help_panel``, in the order of ``panel_order``), as plain text: typer draws panels
    only with rich markup, which this app leaves off. One width for the option column of
    every panel, so they line up."""

    panel_order: tuple = ()

    def format_options(self, ctx, formatter) -> None:
        args, panels = [], {}
        for param in self.get_params(ctx):
            rv = param.get_help_record(ctx)
            if rv is None:
                continue
            if param.param_type_name == "argument":
                args.append(rv)
            else:
                panel = getattr(param, "rich_help_panel", None) or "Options"
                panels.setdefault(panel, []).append(rv)
        rows = args + [r for rs in panels.values() for r in rs]
        width = min(max((len(r[0]) for r in rows), default=0), 30)
        pad = lambda rs: [(a.ljust(width), b) for a, b in rs]  # noqa: E731
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(pad(args))
        order = list(getattr(self, "panel_order", ()))
        rank = lambda kv: order.index(kv[0]) if kv[0] in order else len(order)  # noqa: E731
        for title, rs in sorted(panels.items(), key=rank):
            with formatter.section(title):
                formatter.write_dl(pad(rs))


app = typer.Typer(cls=CharlmGroup, help=HELP, no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"],
                                    "max_content_width": 96},
                  pretty_exceptions_enable=False, rich_markup_mode=None)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
DEBUG = {"on": False}
PLAIN_PROGRESS_SECONDS = 30.0   # without a terminal: at most one progress line this often


def live_progress() -> bool:
    """Whether progress is drawn as a live bar (stderr is a terminal) or written as plain
    lines (a log file, a pipe, CI, nohup), where a bar's carriage-return frames would pile up.
    Every progress display in the command line asks here."""
    return sys.stderr.isatty()


def fit_line(line: str, stream=None) -> str:
    """``line`` cut to the width of the terminal ``stream`` (stderr) writes to, with an
    ellipsis when cut; whole when the stream is not a terminal (a log file, a pipe), which
    keeps every column it is given."""
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    if isatty is None or not isatty():
        return line
    width = shutil.get_terminal_size().columns
    return line if len(line) <= width else line[: max(width - 1, 1)] + "…"


def fail(e: CharlmError, command: str | None = None) -> None:
    if DEBUG["on"]:
        raise e
    message = str(e)
    if e.exit_code == 2 and command:   # a usage error: point at the help, as typer's do
        message += f" See 'charlm {command} -h'."
    fail_line(message, e.exit_code)


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
            fail(e, fn.__name__.removesuffix("_cmd"))
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
LEVEL_HELP = "Which default language model to use: models/<level>.npz."
MODEL_HELP = "A model file (overrides --level); starter = the bundled starter model."
TASK_HELP = ("Which default model: lm (models/<level>.npz), tag (models/tag.npz) or "
             "classify (models/classify.npz) [default: lm; with --model: the file's own].")


def model_path(level: str, model: Optional[Path]) -> Path:
    if level not in ("char", "word"):
        raise ConfigError(f"Unknown level {level!r}. Use char or word.")
    return model if model is not None else default_out(level, "lm")


# What makes the model a command needs, when there is none (sentence tasks; the language model's
# hint depends on its level), and what the model is called in messages.
TRAIN_HINT = {"tag": "charlm train --task tag TRAIN.conll --valid DEV.conll",
              "classify": "charlm train --task classify FILE"}
MODEL_NAME = {"lm": "language model", "tag": "tagger", "classify": "classifier"}
USE_COMMAND = {"lm": "charlm sample", "tag": "charlm tag", "classify": "charlm classify"}


def open_model(level: str, model: Optional[Path], tasks: tuple = ("lm",),
               task: Optional[str] = None, starter: bool = False):
    """The model of --model, or the default file of ``task`` (by default the first of
    ``tasks``): models/<level>.npz for a language model, models/<task>.npz otherwise. A model
    of another task than ``tasks`` (or than ``task``, when both it and --model are given) is
    refused with the command that uses it. ``starter``: a character language model falls back
    to the bundled starter model when there is neither (and no default file of another task
    this command could mean: then the error names it), and says so in one line on stderr."""
    given, task, fallback = task, task or tasks[0], None
    others = [t for t in tasks if t != task and default_out(level, t).exists()]
    if task == "lm":
        path = model_path(level, model)
        if starter and model is None and level == "char" and not path.exists() \
                and not (others and given is None):
            fallback, path = path, checkpoint.starter_path()
        hint = ("charlm train corpus.txt" if level == "char"
                else "charlm train --level word corpus.txt")
        what = f"{level} model"
    else:
        path = model if model is not None else default_out(level, task)
        hint, what = TRAIN_HINT[task], MODEL_NAME[task]
    if model is not None:
        path = checkpoint.locate(path)   # the name `starter`: the bundled starter model
    if not path.exists():
        if model is not None:
            raise ModelFileError(f"No model file at {path}. Check the path, or make one with "
                                 f"`{hint} --out {path}`.")
        alt = "".join(f"; for the {MODEL_NAME[t]} in {default_out(level, t)}, add --task {t}"
                      for t in others)
        raise ModelFileError(f"No {what} at {path}. Train one first: `{hint}`{alt}.")
    m, meta, _ = checkpoint.load(path)
    if m.config.task not in ((given,) if given else tasks):
        kind = {"lm": "language", "tag": "tagging", "classify": "classification"}.get(
            m.config.task, m.config.task)
        use = USE_COMMAND.get(m.config.task, "charlm sample")
        if given and m.config.task in tasks:   # --task and the file disagree
            raise ConfigError(f"{path} holds a {kind} model, not a {MODEL_NAME[task]} "
                              f"(--task {task}). Drop --task, or give --task "
                              f"{m.config.task}.")
        not_a = f", not a {MODEL_NAME[task]}" if task != "lm" else ""
        raise ConfigError(f"{path} holds a {kind} model{not_a}, which this command cannot "
                          f"use. Use `{use}` (or `charlm eval`) with it.")
    if fallback is not None:
        err.print(f"No model at {fallback}: using charlm's starter model (English prose from "
                  "Project Gutenberg books). Train your own with `charlm train FILE`.")
    return m, meta, path


def pyplot():
    """matplotlib's pyplot for --plot (the optional `plot` extra), drawing to files only."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CharlmError("--plot needs matplotlib, which is not installed. Install it with "
                          "`pip install 'charlm[plot]'` (or `pip install matplotlib`).") from None
    return plt


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


STDIN_READ = {"by": None}   # which argument has read standard input (it can be read once)


def read_path(path: Path, encoding: str = "utf-8", what: str = "the file") -> str:
    """A file's text, or standard input's for ``-`` (a corpus, an eval file, a score file)."""
    if str(path) != "-":
        return read_text(path, encoding)
    if STDIN_READ["by"] is not None:
        raise ConfigError(f"Standard input ('-') can be read only once, and {STDIN_READ['by']} "
                          f"already reads it. Give a file for {what}.")
    STDIN_READ["by"] = what
    return read_stdin(encoding)


def stdin_piped() -> bool:
    """Whether standard input is a pipe or a file (``echo text | charlm tag``), not a
    terminal a user would have to type into."""
    return sys.stdin is not None and not sys.stdin.isatty()


def read_input(args: Optional[list], file: Optional[Path], encoding: str,
               what: str) -> tuple[list[str], Optional[str], Optional[str]]:
    """What a command that reads text (score, tag, classify) works on: its arguments, and the
    text of ``--file`` ('-' = standard input); with neither, ``-`` alone, or nothing at all
    while standard input is piped: standard input. Returns (the arguments, the name of the
    file or "-" read, its text) with None for the last two when no file was read."""
    texts = [arg_text(t, what) for t in args or []]
    if file is not None:
        return texts, str(file), read_path(file, encoding, "--file")
    if texts == ["-"] or (not texts and stdin_piped()):
        return [], "-", read_path(Path("-"), encoding, f"the {what}s")
    return texts, None, None


def text_lines(text: str) -> list[str]:
    """The lines of a file read as one text per line, split on "\\n" only (U+0085 and the
    like stay inside a line), blank ones kept; a final line break ends the last line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def emit_json(obj, sink=None) -> None:
    """One JSON line on ``sink`` (stdout); a non-finite number (NaN, ±infinity) is written as
    null, so every line is valid JSON."""
    sink = sink or sys.stdout
    sink.write(json.dumps(finite_json(obj), ensure_ascii=False, allow_nan=False) + "\n")
    sink.flush()


RATIOS = ("accuracy", "precision", "recall", "f1", "macro_f1", "probability")


def json_ratios(obj):
    """``obj`` with every ratio (accuracy, precision, recall, F1, a label's probability)
    rounded to 6 significant digits, as every command writes them in JSON."""
    if isinstance(obj, dict):
        return {k: significant(v) if k in RATIOS and isinstance(v, float) else json_ratios(v)
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_ratios(v) for v in obj]
    return obj


def finite_json(obj):
    """``obj`` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


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
