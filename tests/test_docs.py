"""The documents cannot drift from the code: every `charlm …` command line in README.md and
docs/*.md goes through the command line's own parser (typer's click commands): the command must
exist, and every option in it, and a value given to an option with fixed choices must be one of
them. Every `python -m bench …` line must name a registered benchmark job and use options it
takes. Placeholders (`…`, `FILE`, `N`) are allowed where a value goes.

The check itself is tested on lines made up to fail, so that it cannot pass by finding nothing.
"""

from __future__ import annotations

import contextlib
import enum
import io
import re
import shlex
import sys
import typing
from pathlib import Path

import pytest
import typer

from charlm.cli import app
from charlm.cli.common import strip_debug

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))                  # the benchmark harness, bench/, is not installed
from bench.__main__ import parse as parse_bench  # noqa: E402

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BREAKS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "2>", "2>&1"}
PLACEHOLDERS = {"…", "...", "…]"}
HELP = {"-h", "--help"}
FENCE = re.compile(r"^\s*```(\w*)")


def snippets(text: str) -> list[tuple[int, str]]:
    """(line number, text) of every shell line in a fenced block (continuations joined) and of
    every inline code span elsewhere; Python, JSON and other fenced blocks are left out."""
    out, fence, joined, start = [], None, "", 0
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            fence = None if fence is not None else (m.group(1) or "sh")
            continue
        if fence is None:
            out += [(n, span) for span in re.findall(r"`([^`]+)`", line)]
        elif fence in ("sh", "bash", "console", "shell"):
            if not joined:
                start = n
            joined += line.rstrip().rstrip("\\") + " "
            if not line.rstrip().endswith("\\"):
                out.append((start, joined))
                joined = ""
    return out


def split(snippet: str) -> list[list[str]]:
    """The simple commands of a shell line: tokens, comments dropped, split at | & ; and
    redirections (a redirection's target is dropped with it)."""
    try:
        tokens = shlex.split(snippet, comments=True)
    except ValueError:               # an unbalanced quote in prose: words will do
        tokens = snippet.split()
    commands, current, skip = [], [], False
    for t in tokens:
        if skip:
            skip = False
            continue
        if t in SHELL_BREAKS or re.fullmatch(r"\d?>+&?\d*", t):
            commands.append(current)
            current = []
            skip = t.endswith(">") or t.endswith(">>")
            continue
        if re.match(r"^\d?>", t):      # 2>train.log
            continue
        current.append(t.rstrip(";"))
        if t.endswith(";"):          # `…; wait`
            commands.append(current)
            current = []
    return [c for c in commands + [current] if c]


def charlm_args(tokens: list[str]) -> list[str] | None:
    """The arguments after the `charlm` program in a command (after env, taskset, mpiexec …)."""
    for i, t in enumerate(tokens):
        if re.fullmatch(r"(\S*/)?python3?", t) or t.endswith(".py"):
            return None          # another program's command line ("--only charlm" is its word)
        if t == "charlm" or t.endswith("/charlm"):
            return [a for a in tokens[i + 1:] if a not in PLACEHOLDERS]
    return None


def bench_args(tokens: list[str]) -> list[str] | None:
    """The arguments after `python -m bench` in a command."""
    for i, t in enumerate(tokens[:-2]):
        if re.fullmatch(r"(\S*/)?python3?", t) and tokens[i + 1: i + 3] == ["-m", "bench"]:
            return [a for a in tokens[i + 3:] if a not in PLACEHOLDERS]
    return None


GROUP = typer.main.get_command(app)


def choices(param) -> list[str] | None:
    """The values an option allows, where it has a fixed set (a click Choice, or a typing
    Literal or Enum annotation as typer keeps it)."""
    t = getattr(param, "type", None)
    if getattr(t, "choices", None):
        return [str(c) for c in t.choices]
    ann = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if typing.get_origin(ann) is typing.Literal:
        return [str(c) for c in typing.get_args(ann)]
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return [str(e.value) for e in ann]
    return None


def parse_only(command, name: str, args: list[str], parent=None):
    """The command's own option parser over ``args``, without running anything (no callbacks,
    so `--install-completion` in a document installs nothing): (options, other args)."""
    ctx = command.context_class(command, info_name=name, parent=parent)
    opts, rest, _ = command.make_parser(ctx).parse_args(list(args))
    return ctx, opts, rest


def check_charlm(args: list[str]) -> str | None:
    """Why these arguments do not parse as a charlm command line, or None."""
    args, _ = strip_debug([a for a in args if a not in HELP])   # --debug may stand anywhere
    try:
        ctx, _, rest = parse_only(GROUP, "charlm", args)
        if not rest:
            return None
        name = rest[0]
        sub = GROUP.get_command(ctx, name)
        if sub is None:
            return f"charlm has no command {name!r}"
        _, opts, extra = parse_only(sub, name, rest[1:], ctx)
    except Exception as e:                     # the parser's own exceptions, by name: typer
        kind = type(e).__name__                # may carry its own copy of click's
        if kind == "NoSuchOption":
            where = f"charlm {name}" if "name" in locals() else "charlm"
            return f"{where} has no option {e.option_name}"
        if kind == "BadOptionUsage":           # an option's value left out in prose
            return None
        raise
    for p in sub.params:
        allowed = choices(p)
        if allowed is None or opts.get(p.name) is None:
            continue
        values = opts[p.name] if isinstance(opts[p.name], (list, tuple)) else [opts[p.name]]
        for v in values:
            placeholder = re.fullmatch(r"[A-Z_]+", v) or "<" in v or "|" in v
            if not placeholder and v not in allowed:
                return f"charlm {name} {p.opts[0]}: {v!r} is not one of {allowed}"
    takes = sum(p.nargs if p.nargs > 0 else 10**6 for p in sub.params
                if p.param_type_name == "argument")
    if len(extra) > takes:
        return f"charlm {name} takes no argument {extra[takes]!r}"
    return None


def check_bench(args: list[str]) -> str | None:
    """Why these arguments are not a `python -m bench` command line, or None. A line that
    leaves out a required option (a job named in prose) is not a drift."""
    args = [a for a in args if a not in HELP]
    if not args:
        return None
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parse_bench(args)
    except SystemExit:
        message = err.getvalue().strip().splitlines()[-1]
        if "the following arguments are required" not in message:
            return message
    return None


def problems(text: str, where: str = "") -> tuple[list[str], int, int]:
    """The problems of every command in a markdown text, and how many charlm and bench
    commands it checked."""
    found, n_charlm, n_bench = [], 0, 0
    for line, snippet in snippets(text):
        for tokens in split(snippet):
            for kind, args, check in (("charlm", charlm_args(tokens), check_charlm),
                                      ("bench", bench_args(tokens), check_bench)):
                if args is None:
                    continue
                if kind == "charlm":
                    n_charlm += 1
                else:
                    n_bench += 1
                why = check(args)
                if why:
                    found.append(f"{where}:{line}: {why}  [{' '.join(tokens)}]")
    return found, n_charlm, n_bench


def test_every_command_in_the_docs_parses():
    found, n_charlm, n_bench = [], 0, 0
    for path in DOCS:
        f, c, b = problems(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
        found, n_charlm, n_bench = found + f, n_charlm + c, n_bench + b
    assert not found, "\n".join(found)
    # the documents hold many of both; finding few would mean the extraction broke
    assert n_charlm >= 80 and n_bench >= 20, (n_charlm, n_bench)


@pytest.mark.parametrize("line, why", [
    ("charlm train corpus.txt --no-such-option", "charlm train has no option --no-such-option"),
    ("charlm frobnicate corpus.txt", "charlm has no command 'frobnicate'"),
    ("charlm train --cell transformer", "'transformer' is not one of"),
    ("charlm info --model models/tag.npz --per-line", "charlm info has no option --per-line"),
    ("python -m bench no-such-job", "no job 'no-such-job'"),
    ("python -m bench tag --no-such-option", "unrecognized arguments: --no-such-option"),
])
def test_the_check_finds_a_line_that_drifted(line, why, capsys):
    for text in (f"```\n{line}   # a comment\n```\n", f"Run `{line}` to see.\n"):
        found, n_charlm, n_bench = problems(text)
        assert n_charlm + n_bench == 1
        assert len(found) == 1 and why in found[0], found


def test_the_check_passes_good_lines_with_placeholders():
    text = ("```\n"
            "OPENBLAS_NUM_THREADS=1 taskset -c 0 charlm train corpus.txt --out m.npz \\\n"
            "    --steps 100 --cell gru    # a comment\n"
            "mpiexec -n 2 charlm train … --resume --steps N\n"
            "echo \"the pear\" | charlm score --json > out.jsonl\n"
            "python -m bench tag --cores 0 --threads 1 & python -m bench --cores 1 tag-run --x\n"
            "```\n"
            "Then `charlm sample --debug -n 3 --level word` and `charlm train --task …`.\n")
    found, n_charlm, n_bench = problems(text)
    assert found == [] and (n_charlm, n_bench) == (5, 2)
