"""The command line as a user meets it: exit codes, stdout / stderr, --json, help, and the three
first-session commands run exactly as written in a fresh directory.

Commands run in-process with typer's CliRunner, which keeps stdout and stderr apart; what each
command prints is compared with the library's own results for the same model.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import random
import re
import shlex
from dataclasses import asdict
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

import charlm
from charlm.cli import app
from charlm.nn.model import ModelConfig
from charlm.training import checkpoint
from charlm.training.trainer import TrainConfig, Trainer
from charlm.use.gradcheck import TOLERANCE
from charlm.use.score import score

WORDS = ["the", "apple", "and", "pear", "salad", "is", "good", "with", "lemon", "on", "top"]
SMALL = ["--cell", "gru", "--layers", "1", "--hidden", "16", "--embed", "8", "--batch", "8",
         "--bptt", "16", "--eval-batch", "4", "--eval-every", "10"]
COMMANDS = sorted(typer.main.get_command(app).commands)


def corpus_text(n: int, seed: int = 0) -> str:
    r = random.Random(seed)
    return "".join(" ".join(r.choice(WORDS) for _ in range(r.randint(3, 8))) + "\n"
                   for _ in range(n))


def invoke(*args, **kw):
    return CliRunner().invoke(app, [str(a) for a in args], **kw)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small char model trained through the command line: (dir, model path, corpus)."""
    d = tmp_path_factory.mktemp("trained")
    corpus = d / "corpus.txt"
    corpus.write_text(corpus_text(200), encoding="utf-8")
    path = d / "m.npz"
    res = invoke("train", corpus, *SMALL, "--steps", 20, "--out", path)
    assert res.exit_code == 0, res.stderr
    return d, path, corpus


# ----------------------------------------------------------- version and help
def test_version():
    res = invoke("--version")
    assert res.exit_code == 0
    assert res.stdout == f"charlm {importlib.metadata.version('charlm')}\n"
    assert charlm.__version__ == importlib.metadata.version("charlm")


def test_the_commands_of_the_contract_exist():
    assert set(COMMANDS) >= {"train", "sample", "score", "eval", "info", "bench", "gradcheck"}


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_top_level_help(flag):
    res = invoke(flag)
    assert res.exit_code == 0
    assert res.stdout.startswith("Usage:")
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s", res.stdout, re.M), name


def help_entries(text: str) -> dict[str, str]:
    """The option sections of a help text ('Options:', or train's panels), one
    whitespace-normalised entry per option, keyed by each of its flags."""
    entries: list[str] = []
    for line in text.splitlines():
        if re.match(r"^  -", line):
            entries.append(line)
        elif entries and entries[-1] is not None and line.startswith("   "):
            entries[-1] += " " + line
        elif line.strip() and not line.startswith(" "):   # a section's title
            entries.append(None)
    out = {}
    for e in filter(None, entries):
        head = re.match(r"^  (\S.*?)(?:\s{2,}|$)", e).group(1)   # the options column
        for flag in re.findall(r"(?<![\w-])(--?[\w-]+)", head.split(" <")[0]):
            out[flag] = " ".join(e.split())
    return out


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_and_every_option_a_help_line(name):
    res = invoke(name, "-h")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("Usage: ") and f" {name} " in res.stdout.splitlines()[0]
    assert invoke(name, "--help").stdout == res.stdout
    entries = help_entries(res.stdout)
    cmd = typer.main.get_command(app).commands[name]
    options = [p for p in cmd.params if p.param_type_name == "option"]
    assert options
    for p in options:
        flag = max(p.opts, key=len)
        assert flag.startswith("--") and flag == flag.lower() and "_" not in flag  # kebab-case
        assert p.help and p.help.strip(), flag
        entry = entries.get(flag)
        assert entry is not None, f"{flag} missing from `charlm {name} -h`"
        # (compared without whitespace: the help formatter wraps lines, even inside a word
        # such as --decay-after)
        assert "".join(p.help.split()) in "".join(entry.split()), flag
        # its default is shown, unless it is a switch or has none ('not set')
        if not p.is_flag and p.default is not None and not p.multiple:
            assert "default" in entry, flag
    assert "-h, --help" in res.stdout


# ------------------------------------------- the first session, as written
def test_the_three_commands_exactly_as_written(tmp_path, monkeypatch):
    """`charlm train corpus.txt` parses to the library's default model and run, with the 10
    minute budget; it is cut to zero steps here (the smallest limit) by shortening the budget
    it was given, then `charlm sample --level char` and `charlm score "…"` run on its file."""
    monkeypatch.chdir(tmp_path)
    Path("corpus.txt").write_text(corpus_text(240, 1), encoding="utf-8")
    seen = {}
    real_run_loop = Trainer.run_loop

    def run_loop(self):
        seen["cfg"], seen["model"], seen["out"] = asdict(self.cfg), self.model.config, self.out
        self.cfg.time_budget = 1e-9
        return real_run_loop(self)

    monkeypatch.setattr(Trainer, "run_loop", run_loop)
    res = CliRunner().invoke(app, shlex.split("train corpus.txt"))
    assert res.exit_code == 0, res.stderr
    assert seen["model"] == ModelConfig()
    # the default clip, resolved by the trainer: 5 per step of the window for an Adam LM
    assert seen["cfg"] == asdict(TrainConfig(time_budget=600.0, clip=5.0 * 128))
    assert seen["out"] == Path("models/char.npz")
    assert Path("models/char.npz").is_file()
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    check_sample_and_score(Path("models/char.npz"))


def test_the_three_commands_with_small_sizes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("corpus.txt").write_text(corpus_text(200, 2), encoding="utf-8")
    res = CliRunner().invoke(app, shlex.split("train corpus.txt --steps 3") + SMALL)
    assert res.exit_code == 0, res.stderr
    assert "Trained 3 steps" in res.stdout
    assert Path("models/char.npz").is_file() and Path("models/char.log.jsonl").is_file()
    check_sample_and_score(Path("models/char.npz"))


def check_sample_and_score(path: Path):
    model, _, _ = checkpoint.load(path)
    res = CliRunner().invoke(app, shlex.split("sample --level char"))
    assert res.exit_code == 0, res.stderr
    text = res.stdout.rstrip("\n")
    assert "\n" not in text and 0 < len(res.stdout) <= 201
    assert set(text) <= set(model.vocab.tokens)
    res = CliRunner().invoke(app, shlex.split('score "the apple and pear salad"'))
    assert res.exit_code == 0, res.stderr
    lp = score(model, "the apple and pear salad").log_prob
    first, second = res.stdout.splitlines()[:2]
    assert first.startswith("P(the apple and pear salad) = ")
    assert float(re.search(r"ln P = (-?[\d.]+)", second).group(1)) == pytest.approx(lp,
                                                                                    abs=1e-4)
    assert "25 tokens" in second                      # 24 characters and <EOS>


# --------------------------------------------------- every command, with --json
def test_train_prints_results_on_stdout_and_progress_on_stderr(trained):
    d, path, corpus = trained
    out = d / "again.npz"
    res = invoke("train", corpus, *SMALL, "--steps", 20, "--out", out)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("Trained 20 steps")
    assert f"Model: {out}" in res.stdout
    assert "parameters" in res.stderr and "parameters" not in res.stdout
    _, meta, _ = checkpoint.load(out)
    assert f"at step {meta['run']['best_step']}." in res.stdout


def test_sample_json_and_text_agree(trained):
    _, path, _ = trained
    model, _, _ = checkpoint.load(path)
    j = invoke("sample", "--model", path, "-n", 3, "--seed", 5, "--json")
    t = invoke("sample", "--model", path, "-n", 3, "--seed", 5)
    assert j.exit_code == t.exit_code == 0
    rows = json_lines(j.stdout)
    assert [r["index"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert r.keys() >= {"text", "tokens", "log_prob", "n_tokens", "stopped_at_eos", "seed"}
        assert r["text"] == "".join(r["tokens"]) and r["n_tokens"] == len(r["tokens"])
        assert r["seed"] == 5
        if r["stopped_at_eos"]:   # the score of a finished sample is its log-probability
            assert r["log_prob"] == pytest.approx(score(model, r["text"]).log_prob, rel=1e-5)
    assert t.stdout.splitlines() == [r["text"] for r in rows]


def test_score_json_keys_bases_and_stdin(trained):
    _, path, _ = trained
    model, _, _ = checkpoint.load(path)
    sentences = ["the pear", "salad with lemon", "xyz apple"]
    res = invoke("score", *sentences, "--model", path, "--json", "--per-token")
    assert res.exit_code == 0, res.stderr
    rows = json_lines(res.stdout)
    assert [r["text"] for r in rows] == sentences
    for r, s in zip(rows, sentences):
        lib = score(model, s)
        assert r.keys() >= {"text", "log_prob", "probability", "perplexity", "n_tokens",
                            "n_oov", "tokens"}
        assert r["log_prob"] == pytest.approx(lib.log_prob, rel=1e-5)  # float32, batched
        assert r["probability"] == pytest.approx(math.exp(lib.log_prob), rel=1e-5)
        assert r["perplexity"] == pytest.approx(math.exp(-lib.log_prob / (len(s) + 1)),
                                                rel=1e-5)
        assert r["n_tokens"] == len(s) + 1
        assert r["n_oov"] == sum(ch not in model.vocab.tokens for ch in s)
        assert [t["token"] for t in r["tokens"]][-1] == "<EOS>"
        assert math.fsum(t["log_prob"] for t in r["tokens"]) == pytest.approx(r["log_prob"])
    assert rows[2]["n_oov"] == 3
    for base, div in (("2", math.log(2)), ("10", math.log(10))):
        b = json_lines(invoke("score", *sentences, "--model", path, "--json", "--base",
                              base).stdout)
        for r, rb in zip(rows, b):
            assert rb["log_prob"] == pytest.approx(r["log_prob"] / div, rel=1e-9)
    stdin = "\n".join(sentences) + "\n"
    for args in (["--file", "-"], ["-"]):
        s = invoke("score", *args, "--model", path, "--json", input=stdin)
        assert s.exit_code == 0, s.stderr
        assert [(r["text"], r["log_prob"]) for r in json_lines(s.stdout)] == \
            [(r["text"], r["log_prob"]) for r in rows]


def test_score_ranks_several_sentences(trained):
    _, path, _ = trained
    sentences = ["the apple and pear salad", "salad pear apple the and", "qqqq", "the",
                 "lemon on top"]
    table = invoke("score", *sentences, "--model", path)
    js = invoke("score", *sentences, "--model", path, "--json")
    assert table.exit_code == js.exit_code == 0
    by_prob = [r["text"] for r in sorted(json_lines(js.stdout), key=lambda r: -r["log_prob"])]
    rows = [line for line in table.stdout.splitlines() if "│" in line]
    cells = [[c.strip() for c in line.split("│")] for line in rows]
    assert [c[0] for c in cells] == [str(i) for i in range(1, len(sentences) + 1)]
    assert [c[1] for c in cells] == by_prob
    assert by_prob != sentences           # the ranking did reorder them
    assert "outside the vocabulary" in table.stderr   # qqqq: flagged on stderr


def test_eval_json(trained):
    d, path, corpus = trained
    held = d / "held.txt"
    held.write_text(corpus_text(15, 9), encoding="utf-8")
    res = invoke("eval", held, "--model", path, "--json")
    assert res.exit_code == 0, res.stderr
    [r] = json_lines(res.stdout)
    assert r.keys() >= {"tokens", "oov", "perplexity", "perplexity_without_oov",
                        "bits_per_char"}
    text = held.read_text()
    # each character, and <EOS> for each line break, in --eval-batch 4 rows (the last
    # len mod 4 are left out, as training's validation leaves them out)
    assert r["tokens"] == len(text) // 4 * 4
    assert r["perplexity"] == pytest.approx(2 ** r["bits_per_char"], rel=1e-9)
    plain = invoke("eval", held, "--model", path)
    assert plain.exit_code == 0
    assert f"perplexity {r['perplexity']:.3f}" in plain.stdout


def test_info_json(trained):
    _, path, _ = trained
    res = invoke("info", "--model", path, "--json")
    assert res.exit_code == 0, res.stderr
    [r] = json_lines(res.stdout)
    model, meta, _ = checkpoint.load(path)
    assert r["config"] == asdict(model.config)
    assert r["vocab_size"] == len(model.vocab)
    assert r["parameters"] == sum(v.size for v in model.params.values())
    assert r["steps"] == 20 and r["history"] == meta["run"]["history"]
    assert r["best_step"] == meta["run"]["best_step"]
    assert invoke("info", "--model", path).exit_code == 0


def test_gradcheck_json():
    res = invoke("gradcheck", "--json")
    assert res.exit_code == 0, res.stderr
    rows = json_lines(res.stdout)
    assert len(rows) > 20
    for r in rows:
        assert r.keys() >= {"component", "param", "max_rel_error", "passed", "checked_error"}
        assert r["passed"] == (r["checked_error"] < TOLERANCE)
        assert r["max_rel_error"] >= r["checked_error"]   # raw: no allowance taken off
    for cell in ("rnn", "gru", "lstm"):
        assert any(cell in r["component"] for r in rows), cell


# ------------------------------------------------------------------ errors
# (a character model's sample, score and eval use the starter model instead: test_starter.py)
@pytest.mark.parametrize("cmd, level", [
    *[(cmd, "word") for cmd in (["sample"], ["score", "hello"], ["eval", "held.txt"])],
    (["info"], "char"), (["info"], "word")])
def test_missing_model_names_the_train_command_that_makes_it(tmp_path, monkeypatch, cmd,
                                                             level):
    monkeypatch.chdir(tmp_path)
    Path("held.txt").write_text("the pear\n")
    res = invoke(*cmd, "--level", level)
    assert res.exit_code == 1
    assert res.stdout == ""
    assert res.stderr.startswith("Error:") and "Traceback" not in res.stderr
    hint = re.search(r"`(charlm train[^`]*)`", res.stderr).group(1)
    assert hint == ("charlm train corpus.txt" if level == "char"
                    else "charlm train --level word corpus.txt")


def test_following_the_hint_makes_the_missing_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("corpus.txt").write_text(corpus_text(200, 3), encoding="utf-8")
    # (--min-length 1: a model trained 2 steps ends about one sample in 12 at once)
    for cmd in (["sample", "--level", "word", "--min-length", "1"],
                ["score", "--model", "sub/x.npz", "pear"]):
        res = invoke(*cmd)
        assert res.exit_code == 1
        hint = re.search(r"`charlm (train[^`]*)`", res.stderr).group(1)
        made = invoke(*shlex.split(hint), "--steps", 2, *SMALL)
        assert made.exit_code == 0, made.stderr
        res = invoke(*cmd)
        assert res.exit_code == 0, res.stderr
        assert res.stdout.strip()
    assert Path("models/word.npz").is_file() and Path("sub/x.npz").is_file()


@pytest.mark.parametrize("args", [
    ["train", "--bogus-option"],
    ["sample", "--num", "three"],
    ["eval"],                               # FILE missing
    ["no-such-command"],
    ["score", "hi", "--base"],              # option without its value
])
def test_usage_errors_exit_2(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    res = invoke(*args)
    assert res.exit_code == 2
    assert res.stdout == ""
    assert "Error" in res.stderr and "Traceback" not in res.stderr


def test_domain_errors_go_to_stderr_and_exit_1(tmp_path, monkeypatch, trained):
    monkeypatch.chdir(tmp_path)
    res = invoke("train", "missing.txt", "--steps", 1)
    assert res.exit_code == 1
    assert res.stdout == "" and res.stderr.startswith("Error:")
    assert "missing.txt" in res.stderr and "Traceback" not in res.stderr
    Path("bad.npz").write_bytes(b"not a zip file")
    res = invoke("info", "--model", "bad.npz")
    assert res.exit_code == 1
    assert res.stdout == "" and res.stderr.startswith("Error:")
    assert not Path("models").exists()      # no stray files on error
