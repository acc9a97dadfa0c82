"""Day two at the command line (issue 10): errors, help, progress in a log file, scoring a
file line by line, fair ranking with unknown words, sampling habits, `info`, `gradcheck`,
standard input.

Models here are made directly (seeded, untrained) and saved with checkpoint.save, so every
figure a command prints can be recomputed with the library.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from charlm import checkpoint
from charlm.cli import app
from charlm.model import Model, ModelConfig
from charlm.score import score
from charlm.vocab import Vocab

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args, **kw):
    return CliRunner().invoke(app, [str(a) for a in args], **kw)


def proc(*args, input: bytes | None = None) -> subprocess.CompletedProcess:
    """`python -m charlm ARGS` in a real process (stdin, stderr and exit codes as a shell
    sees them)."""
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT)), "COLUMNS": "200",
           "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "charlm", *map(str, args)], input=input,
                          capture_output=True, env=env, timeout=120)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def make_file(path: Path, tokens: list[str], level: str = "char", meta: dict | None = None,
              seed: int = 0, **vocab_opts) -> Path:
    vocab = Vocab(["<EOS>", "<UNK>", *tokens], level, **vocab_opts)
    cfg = ModelConfig(cell="gru", layers=1, hidden=8, embed=4, dropout=0.0)
    checkpoint.save(path, Model.create(cfg, vocab, np.random.default_rng(seed)), meta)
    return path


@pytest.fixture(scope="module")
def char_model(tmp_path_factory) -> Path:
    return make_file(tmp_path_factory.mktemp("m") / "char.npz", list(" abcdefghijklmnopqrst"))


# ------------------------------------------------------------ 12. errors
@pytest.mark.parametrize("where", ["before", "after", "last"])
def test_debug_is_accepted_anywhere(tmp_path, where):
    missing = tmp_path / "none.npz"
    args = {"before": ["--debug", "info", "--model", missing],
            "after": ["info", "--debug", "--model", missing],
            "last": ["info", "--model", missing, "--debug"]}[where]
    r = invoke(*args)
    assert type(r.exception).__name__ == "ModelFileError"   # raised, with its traceback
    p = proc(*args)
    assert p.returncode == 1 and b"Traceback" in p.stderr and b"ModelFileError" in p.stderr
    plain = proc("info", "--model", missing)    # without it: one line, no traceback
    assert plain.returncode == 1 and plain.stderr.decode().count("\n") == 1


@pytest.mark.parametrize("args, command", [
    (["train", "--bogus"], "train"),
    (["sample", "--num", "three"], "sample"),
    (["eval"], "eval"),
    (["score", "hi", "--base"], "score"),
    (["score", "hi", "--base", "3"], "score"),
    (["train", "--cell", "transformer"], "train"),
    (["no-such-command"], None),
])
def test_usage_errors_are_one_line_with_a_pointer_to_help(tmp_path, args, command):
    for r in (invoke(*args), proc(*args)):
        code = getattr(r, "exit_code", getattr(r, "returncode", None))
        err = r.stderr if isinstance(r.stderr, str) else r.stderr.decode()
        assert code == 2, err
        assert err.count("\n") == 1 and err.startswith("Error: "), err
        assert "Traceback" not in err and "Usage:" not in err
        hint = re.search(r" See '(.*) -h'\.$", err.strip()).group(1)
        assert hint.split()[-1] == (command or hint.split()[-1])
        assert not (r.stdout if isinstance(r.stdout, str) else r.stdout.decode())
    assert list(tmp_path.iterdir()) == []


def test_the_pointer_leads_to_help():
    r = invoke("sample", "--num", "three")
    hint = re.search(r"See '(.*)'\.$", r.stderr.strip()).group(1)
    assert hint.split()[-2:] == ["sample", "-h"]
    h = invoke(*hint.split()[-2:])
    assert h.exit_code == 0 and "--num" in h.stdout


# -------------------------------------------------------------- 14. help
@pytest.mark.parametrize("command, flag, choices", [
    ("train", "--level", "char|word"),
    ("train", "--cell", "rnn|gru|lstm"),
    ("train", "--activation", "tanh|relu"),
    ("train", "--optimizer", "sgd|adagrad|adam"),
    ("train", "--schedule", "constant|decay|plateau"),
    ("train", "--clip-mode", "norm|value"),
    ("train", "--dtype", "float32|float64"),
    ("score", "--base", "e|2|10"),
    ("score", "--level", "char|word"),
    ("sample", "--level", "char|word"),
    ("bench", "--config", "C1|C2|W1|MC"),
    ("bench", "--cell", "rnn|gru|lstm"),
])
def test_help_shows_choices_not_python_types(command, flag, choices):
    text = invoke(command, "-h").stdout
    assert re.search(rf"^  {flag} <{re.escape(choices)}>", text, re.M), text
    assert "<list[str]>" not in text.split("Options:")[1]
    # and the choice is enforced: anything else is a usage error naming the value
    r = invoke(command, flag, "bogus")
    assert r.exit_code == 2 and "'bogus'" in r.stderr


# ------------------------------------------- 8. progress without a terminal
SMALL = ["--cell", "gru", "--layers", "1", "--hidden", "16", "--embed", "8", "--batch", "8",
         "--bptt", "16", "--eval-batch", "4"]
STATUS = re.compile(r"^step ([\d,]+)  epoch [\d.]+  loss [\d.]+ nats  [\d,]+ tok/s  \d+s$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    import random
    r = random.Random(0)
    words = "the apple and pear salad is good with lemon on top".split()
    p = tmp_path_factory.mktemp("c") / "corpus.txt"
    p.write_text("".join(" ".join(r.choice(words) for _ in range(6)) + "\n"
                         for _ in range(300)), encoding="utf-8")
    return p


@pytest.mark.parametrize("every, expected", [(1e9, [20, 40, 45]), (0.0, None)])
def test_progress_without_a_terminal_is_plain_lines(tmp_path, corpus, monkeypatch, every,
                                                    expected):
    """stderr is not a terminal here: no carriage-return frames, and a status line at each
    evaluation (20, 40 and the last step, 45) and at most one every N seconds between (N = 0:
    every step)."""
    from charlm.cli import common
    monkeypatch.setattr(common, "PLAIN_PROGRESS_SECONDS", every, raising=False)
    r = invoke("train", corpus, *SMALL, "--eval-every", 20, "--steps", 45,
               "--out", tmp_path / "m.npz")
    assert r.exit_code == 0, r.stderr
    assert "\r" not in r.stderr and "\x1b" not in r.stderr
    lines = r.stderr.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    steps = [int(m.group(1).replace(",", "")) for m in map(STATUS.match, lines) if m]
    if expected is None:   # each step, then each evaluation's line again
        expected = sorted(list(range(1, 46)) + [20, 40, 45])
    assert steps == expected
    assert sum(line.startswith("step ") and "valid" in line for line in lines) == 3


def test_progress_on_a_terminal_is_a_bar(tmp_path, corpus, monkeypatch):
    from charlm.cli import train_cmd
    monkeypatch.setattr(train_cmd, "live_progress", lambda: True, raising=False)
    r = invoke("train", corpus, *SMALL, "--eval-every", 20, "--steps", 25,
               "--out", tmp_path / "m.npz")
    assert r.exit_code == 0, r.stderr
    assert "\r" in r.stderr and "25/25" in r.stderr      # tqdm's frames
    assert not any(STATUS.match(line) for line in r.stderr.split("\n"))
