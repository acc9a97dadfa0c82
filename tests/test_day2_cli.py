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

from charlm.cli import app
from charlm.nn.model import Model, ModelConfig
from charlm.text.vocab import Vocab
from charlm.training import checkpoint
from charlm.use.score import score

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
    assert invoke(*[a for a in args if a != "--debug"]).exception.code == 1   # without: exit
    if where == "after":   # and in a real process (a subprocess costs seconds: one case)
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
    (["train", "--steps", "-1"], "train"),       # charlm's own usage error (ConfigError)
    (["no-such-command"], None),
])
def test_usage_errors_are_one_line_with_a_pointer_to_help(tmp_path, args, command):
    real = args[0] in ("train", "score")     # a real process too, for a few (seconds each)
    for r in (invoke(*args), *([proc(*args)] if real else [])):
        code = getattr(r, "exit_code", getattr(r, "returncode", None))
        err = r.stderr if isinstance(r.stderr, str) else r.stderr.decode()
        assert code == 2, err
        assert err.count("\n") == 1 and err.startswith("Error: "), err
        assert "Traceback" not in err and "Usage:" not in err
        hint = re.search(r" See '(.*) -h'\.$", err.strip()).group(1)
        if command:      # the pointer names the command the error was about
            assert hint.split()[-1] == command
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


# ------------------------------------------------- 9. scoring a file, per line
def test_score_file_is_one_line_per_input_line_in_order(tmp_path, char_model):
    model, _, _ = checkpoint.load(char_model)
    lines = ["a bad cat", "", "qqq xyz", "the", "zz", "   ", "a bad cat"]
    f = tmp_path / "in.txt"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = invoke("score", "--file", f, "--model", char_model)
    assert r.exit_code == 0, r.stderr
    out = r.stdout.split("\n")
    assert out[-1] == "" and len(out) - 1 == len(lines)
    for row, text in zip(out, lines):
        lp, n, oov, ppl, shown = row.split("\t")
        lib = score(model, text)
        assert shown == text
        assert float(lp) == pytest.approx(lib.log_prob, abs=1e-4)
        assert int(n) == len(text) + 1 and int(oov) == sum(c not in model.vocab.index
                                                           for c in text)
        assert float(ppl) == pytest.approx(math.exp(-lib.log_prob / (len(text) + 1)),
                                           rel=1e-3)
    assert out[1].split("\t")[1] == "1"        # a blank line: its <EOS> alone
    # warnings are summarised: one for the blank line, one for all lines with unknowns
    warns = r.stderr.splitlines()
    assert len(warns) == 2 and all(w.startswith("Warning: ") for w in warns), warns
    assert "1 empty sentence" in warns[0]
    assert "2 sentences of 7 have tokens outside the vocabulary" in warns[1]
    assert warns[1].endswith(": 'x' 'y' 'z'")         # each unknown token once
    # --json: one object per input line, in order, blank lines kept
    js = json_lines(invoke("score", "--file", f, "--model", char_model, "--json").stdout)
    assert [j["text"] for j in js] == lines and [j["index"] for j in js] == list(range(7))
    assert [j["n_tokens"] for j in js] == [int(row.split("\t")[1]) for row in out[:-1]]
    # --rank: the table, best first
    t = invoke("score", "--file", f, "--model", char_model, "--rank")
    rows = [line.split("│")[1].strip() for line in t.stdout.splitlines() if "│" in line]
    assert rows == [j["text"].strip() for j in sorted(js, key=lambda j: -j["log_prob"])]


def test_sentences_as_arguments_still_rank_and_lines_is_offered(char_model):
    r = invoke("score", "abc", "a", "--model", char_model)
    assert "│" in r.stdout                      # a table
    r = invoke("score", "abc", "a", "--model", char_model, "--lines")
    assert [row.split("\t")[-1] for row in r.stdout.splitlines()] == ["abc", "a"]


# ------------------------------------------------ 10. ranking with unknown words
def test_vocab_records_how_many_types_unk_stands_for():
    lines = ["a a a b b c", "d e f a"]          # types: a ×4, b ×2, c d e f ×1
    v = Vocab.build(lines, "word", max_size=4)  # keeps <EOS> <UNK> a b; leaves c d e f out
    assert v.tokens == ["<EOS>", "<UNK>", "a", "b"] and v.unk_types == 4
    assert Vocab.from_json(v.to_json()).unk_types == 4
    assert Vocab.build(lines, "word", min_count=2).unk_types == 4
    assert Vocab.build(lines, "word").unk_types == 0
    assert Vocab.build(["a <unk> b"], "word").unk_types == 0   # a marker is not a type
    assert Vocab.build(["abcab"], "char", max_size=4).unk_types == 1       # c
    old = v.to_json()
    del old["unk_types"]
    assert Vocab.from_json(old).unk_types is None


def unk_friendly_model(path: Path, unk_types: int | None) -> Path:
    """A word model whose output favours <UNK> (its bias raised by 3), so that a sentence of
    unknown words is likelier than a sentence of known ones."""
    vocab = Vocab(["<EOS>", "<UNK>", "the", "apple", "and", "pear"], "word")
    vocab.unk_types = unk_types
    cfg = ModelConfig(cell="gru", layers=1, hidden=8, embed=4, dropout=0.0)
    m = Model.create(cfg, vocab, np.random.default_rng(3))
    m.params["b_y"][1] += 3.0
    checkpoint.save(path, m, None)
    return path


def test_unk_penalty_ranks_a_sentence_of_unknown_words_fairly(tmp_path):
    path = unk_friendly_model(tmp_path / "w.npz", unk_types=1000)
    model, _, _ = checkpoint.load(path)
    oov, normal = "zork blah", "the apple and pear"
    lp_oov, lp_normal = score(model, oov).log_prob, score(model, normal).log_prob
    penalty = 2 * math.log(1000)    # two <UNK>s, each one of 1,000 word types
    assert lp_oov > lp_normal > lp_oov - penalty      # the case the option is for

    def table(*extra):
        r = invoke("score", oov, normal, "--model", path, *extra)
        assert r.exit_code == 0, r.stderr
        return [[c.strip() for c in line.split("│")] for line in r.stdout.splitlines()
                if "│" in line]

    plain = table()
    assert [row[1] for row in plain] == [oov, normal]            # unknown words win
    assert plain[0][-1] == "has <UNK>" and plain[1][-1] == ""    # and are marked
    fair = table("--unk-penalty")
    assert [row[1] for row in fair] == [normal, oov]             # the penalty reverses it
    assert float(fair[1][3]) == pytest.approx(lp_oov - penalty, abs=2e-3)
    assert float(fair[0][3]) == pytest.approx(lp_normal, abs=2e-3)
    assert fair[1][-1] == f"has <UNK> (−{penalty:.3f})"
    js = json_lines(invoke("score", oov, normal, "--model", path, "--json",
                           "--unk-penalty").stdout)
    assert js[0]["log_prob"] == pytest.approx(lp_oov - penalty, rel=1e-5)
    assert js[0]["unk_penalty"] == pytest.approx(penalty) and js[1]["unk_penalty"] == 0
    assert js[0]["perplexity"] == pytest.approx(math.exp(-(lp_oov - penalty) / 3), rel=1e-5)


def test_unk_penalty_on_an_old_model_file_says_why_not(tmp_path):
    path = unk_friendly_model(tmp_path / "old.npz", unk_types=None)
    r = invoke("score", "zork", "the", "--model", path, "--unk-penalty")
    assert r.exit_code == 1 and r.stderr.startswith("Error: ") and "record" in r.stderr
    assert invoke("score", "zork", "the", "--model", path).exit_code == 0


# -------------------------------------------------------- 20. standard input
def test_score_reads_standard_input_when_no_sentence_is_given(char_model):
    model, _, _ = checkpoint.load(char_model)
    p = proc("score", "--model", char_model, input=b"a bad cat\nthe\n")
    assert p.returncode == 0, p.stderr
    rows = [line.split("\t") for line in p.stdout.decode().splitlines()]
    assert [r[-1] for r in rows] == ["a bad cat", "the"]
    assert float(rows[0][0]) == pytest.approx(score(model, "a bad cat").log_prob, abs=1e-4)
    assert invoke("score", "--model", char_model, input="the\n").stdout.endswith("\tthe\n")


def test_dash_is_standard_input_for_train_and_eval(tmp_path, corpus, char_model):
    text = corpus.read_bytes()
    args = [*SMALL, "--steps", 3, "--eval-every", 0]
    a = invoke("train", corpus, *args, "--out", tmp_path / "a.npz")
    b = invoke("train", "-", *args, "--out", tmp_path / "b.npz", input=text)
    assert a.exit_code == b.exit_code == 0, b.stderr
    ma, mb = checkpoint.load(tmp_path / "a.npz")[0], checkpoint.load(tmp_path / "b.npz")[0]
    assert ma.vocab.tokens == mb.vocab.tokens
    for k in ma.params:
        np.testing.assert_array_equal(ma.params[k], mb.params[k])
    e_file = json_lines(invoke("eval", corpus, "--model", tmp_path / "a.npz", "--json").stdout)
    e_in = json_lines(invoke("eval", "-", "--model", tmp_path / "a.npz", "--json",
                             input=text).stdout)
    assert e_in[0]["perplexity"] == e_file[0]["perplexity"] and e_in[0]["tokens"] > 0
    both = invoke("train", "-", "--valid", "-", *args, "--out", tmp_path / "c.npz", input=text)
    assert both.exit_code == 2 and "only once" in both.stderr
    assert not (tmp_path / "c.npz").exists()


# ------------------------------------------------------------- 13. sampling
def test_sample_json_reports_the_seed_it_used(char_model):
    first = json_lines(invoke("sample", "--model", char_model, "-n", 2, "--json").stdout)
    seed = first[0]["seed"]
    assert isinstance(seed, int) and seed >= 0 and first[1]["seed"] == seed
    again = json_lines(invoke("sample", "--model", char_model, "-n", 2, "--json",
                              "--seed", seed).stdout)
    assert again == first
    others = {json_lines(invoke("sample", "--model", char_model, "--json").stdout)[0]["seed"]
              for _ in range(3)}
    assert len(others | {seed}) > 1          # drawn afresh each time


def test_samples_through_eos_are_separated_by_a_blank_line(char_model):
    args = ["sample", "--model", char_model, "-n", 3, "--no-stop", "--length", 60,
            "--seed", 4]
    texts = [r["text"] for r in json_lines(invoke(*args, "--json").stdout)]
    assert invoke(*args).stdout == "\n\n".join(texts) + "\n"
    stop = ["sample", "--model", char_model, "-n", 3, "--seed", 4]   # one line each, as before
    assert invoke(*stop).stdout == "".join(r["text"] + "\n" for r in
                                           json_lines(invoke(*stop, "--json").stdout))


@pytest.fixture(scope="module")
def eager_model(tmp_path_factory) -> Path:
    """A char model that ends a sequence at once with probability about 0.98."""
    vocab = Vocab(["<EOS>", "<UNK>", *"abcdef"], "char")
    m = Model.create(ModelConfig(cell="gru", layers=1, hidden=8, embed=4, dropout=0.0), vocab,
                     np.random.default_rng(1))
    m.params["b_y"][0] += 6.0
    path = tmp_path_factory.mktemp("eager") / "eager.npz"
    checkpoint.save(path, m, None)
    return path


def test_min_length_forbids_eos_before_n_tokens(eager_model):
    model, _, _ = checkpoint.load(eager_model)
    base = json_lines(invoke("sample", "--model", eager_model, "-n", 40, "--seed", 0,
                             "--json").stdout)
    assert sum(r["n_tokens"] == 0 for r in base) > 30        # mostly empty samples
    rows = json_lines(invoke("sample", "--model", eager_model, "-n", 40, "--seed", 0,
                             "--min-length", 3, "--json").stdout)
    assert all(r["n_tokens"] >= 3 for r in rows)
    assert sum(r["n_tokens"] == 3 for r in rows) > 30        # then it ends as it likes
    for r in rows:   # the reported log-probability is still the model's own
        assert r["stopped_at_eos"]
        assert r["log_prob"] == pytest.approx(score(model, r["text"]).log_prob, rel=1e-5)
    r = invoke("sample", "--model", eager_model, "--min-length", 30, "--length", 20)
    assert r.exit_code == 2 and "--min-length" in r.stderr   # a usage error


def test_min_length_in_the_library():
    from charlm.nn.sampling import sample as draw
    vocab = Vocab(["<EOS>", "<UNK>", "a"], "char")
    m = Model.create(ModelConfig(cell="rnn", layers=1, hidden=4, embed=2, dropout=0.0), vocab,
                     np.random.default_rng(2))
    m.params["b_y"][0] += 20.0       # <EOS> almost surely, unless forbidden
    s = draw(m, np.random.default_rng(0), length=10, min_length=4)
    assert s.ids == [2, 2, 2, 2] and s.stopped_at_eos


def test_sample_out_writes_a_new_file(tmp_path, char_model):
    args = ["sample", "--model", char_model, "-n", 3, "--seed", 9]
    shown = invoke(*args).stdout
    r = invoke(*args, "--out", tmp_path / "s.txt")
    assert r.exit_code == 0 and r.stdout == "" and "Wrote 3 samples" in r.stderr
    assert (tmp_path / "s.txt").read_text(encoding="utf-8") == shown
    r = invoke(*args, "--json", "--out", tmp_path / "s.txt")
    assert r.exit_code == 1 and "already exists" in r.stderr
    assert (tmp_path / "s.txt").read_text(encoding="utf-8") == shown     # untouched
    r = invoke(*args, "--json", "--out", tmp_path / "s.jsonl")
    assert [j["text"] for j in json_lines((tmp_path / "s.jsonl").read_text())] == \
        shown.splitlines()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jsonl", "s.txt"]   # no temp


# ------------------------------------------------------------- 17. gradcheck
def test_rel_error_shows_the_raw_error_beside_the_checked_one():
    from charlm.use import gradcheck
    a, n = np.array([0.0, 2.0]), np.array([5e-12, 2.0])   # round-off where the gradient is 0
    err = gradcheck.rel_error(a, n)
    assert float(err) == 0.0                              # 5e-12 - ATOL (1e-11) < 0: passes
    assert err.raw == pytest.approx(5e-12 / (gradcheck.FLOOR * 2.0))   # 2.5e-8 by hand
    assert err.abs == pytest.approx(5e-12)
    a, n = np.array([1.0, 3.0]), np.array([1.0 + 4e-6, 3.0])
    err = gradcheck.rel_error(a, n)
    assert err.raw == pytest.approx(4e-6 / (2.0 + 4e-6))
    assert float(err) == pytest.approx((4e-6 - gradcheck.ATOL) / (2.0 + 4e-6))


def test_gradcheck_prints_raw_errors_and_the_tolerance(monkeypatch):
    from charlm.use import gradcheck
    results = list(gradcheck.run_all(0))     # computed once for both outputs (10 s)
    monkeypatch.setattr(gradcheck, "run_all", lambda seed: iter(results))
    r = invoke("gradcheck", "--json")
    rows = json_lines(r.stdout)
    assert r.exit_code == 0 and len(rows) == 114 + 12   # + the tied model (8 arrays, 4 states)
    assert sum(row["max_rel_error"] == 0.0 for row in rows) <= 2   # was 95 rows of zeros
    assert all(row["tolerance"] == 1e-6 and row["atol"] == 1e-11 for row in rows)
    assert all(0 < row["max_abs_error"] < 1e-8 for row in rows)
    table = invoke("gradcheck").stdout
    assert "rel. error" in table.splitlines()[1] and table.count("0.00e+00") <= 2
    assert "1e-06" in table.splitlines()[3] and "1e-11" in table
    assert all(len(line) <= 80 for line in table.splitlines())


# ------------------------------------------------------------------ 16. info
def run_meta(finished: bool, corpus: dict | None, **cfg) -> dict:
    from dataclasses import asdict

    from charlm.training.trainer import TrainConfig
    run = {"step": 120, "epoch": 1, "tokens_seen": 30720, "elapsed": 75.0,
           "best_valid": 1.25, "best_step": 100, "finished": finished,
           "history": [{"step": 100, "train_loss": 1.5, "valid_loss": 1.25}]}
    meta = {"run": run, "config": asdict(TrainConfig(**cfg))}
    if corpus is not None:
        meta["corpus"] = corpus
    return meta


def info_lines(path: Path) -> list[str]:
    r = invoke("info", "--model", path)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines[1:] if not line.startswith("continue"))
    return lines


def test_info_interrupted_run_with_two_corpora(tmp_path):
    corpus = {"files": [{"path": "books/a.txt", "bytes": 1200, "sha256": "ab" * 32},
                        {"path": "books/b c.txt", "bytes": 3_400_000, "sha256": "cd" * 32}],
              "valid": None}
    path = make_file(tmp_path / "run.npz", list(" abc\t"),
                     meta=run_meta(False, corpus, lowercase=True, valid_fraction=0.1))
    lines = info_lines(path)
    text = "\n".join(lines)
    assert "run         interrupted: 120 steps, 1 full epoch, 30,720 tokens, 1m15s" in lines
    # the recorded corpus is read again by the resume itself (runs.resume_command)
    assert f"continue    charlm train --resume --out {path}" in lines
    assert "corpus      books/a.txt (1.2 kB)" in lines
    assert "            books/b c.txt (3.4 MB)" in lines
    assert "validation  the last 10% of books/b c.txt, cut at a line break" in lines
    assert "vocabulary  7 tokens: <EOS> <UNK> ␣ a b c \\t" in lines
    assert "one sequence per line; lower-cased" in text
    j = json_lines(invoke("info", "--model", path, "--json").stdout)[0]
    assert j["status"] == "interrupted" and j["corpus"] == corpus
    assert j["resume_command"] == lines[[i for i, x in enumerate(lines)
                                         if x.startswith("continue")][0]][12:]
    assert j["text_options"]["lowercase"] is True


def test_info_finished_run_with_its_own_validation_file(tmp_path):
    corpus = {"files": [{"path": "a.txt", "bytes": 10, "sha256": "00" * 32}],
              "valid": {"path": "v.txt", "bytes": 1, "sha256": "11" * 32}}
    path = make_file(tmp_path / "done.npz", list("ab"), meta=run_meta(True, corpus))
    lines = info_lines(path)
    assert lines[-3].startswith("best        validation 1.2500 nats/token at step 100")
    assert any(line.startswith("run         finished: 120 steps") for line in lines)
    assert "validation  v.txt (1 byte)" in lines and "corpus      a.txt (10 bytes)" in lines
    assert not any(line.startswith("continue") for line in lines)


def test_info_of_an_older_file_without_a_corpus_record(tmp_path):
    path = make_file(tmp_path / "old.npz", list("ab"), meta=run_meta(False, None))
    lines = info_lines(path)
    assert "corpus      not recorded (the file is older than that record)" in lines
    assert "continue    charlm train CORPUS... --resume --out " + str(path) in lines
    untrained = make_file(tmp_path / "bare.npz", list("ab"))
    assert info_lines(untrained)[-1] == "run         no training state in this file"


# ------------------------------------------------------- 22. shell completion
def test_shell_completion_is_typers_own():
    assert "--install-completion" in invoke("-h").stdout
    env = {"_CHARLM_COMPLETE": "complete_bash", "COMP_WORDS": "charlm train --cell ",
           "COMP_CWORD": "3"}
    r = CliRunner().invoke(app, [], env=env, prog_name="charlm")
    assert r.stdout.split() == ["rnn", "gru", "lstm"]
    env.update(COMP_WORDS="charlm sa", COMP_CWORD="1")
    assert CliRunner().invoke(app, [], env=env, prog_name="charlm").stdout.split() == \
        ["sample"]
    # in a process of its own: typer reads the shell for --show-completion from its own
    # state, which an in-process runner shares with every test before this one. Typer guesses
    # the shell from the parent processes unless told not to; under make, CI or a job runner
    # the parent may be no shell at all, so the test names it (typer's own switch for tests)
    script = subprocess.run([sys.executable, "-m", "charlm", "--show-completion", "bash"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ,
                                 "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert script.returncode == 0, script.stderr
    # the hook that asks the program for completions (its variable is named after the
    # program, here `python -m charlm`)
    assert "_COMPLETE=complete_bash" in script.stdout and "complete -o" in script.stdout
