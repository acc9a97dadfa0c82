"""Issue 10 ("day two"), the library side: each test shows one item fixed, against a figure
computed another way (by hand, from the file's bytes, from the training log)."""

from __future__ import annotations

import hashlib
import json
import math
import random
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import charlm
from charlm.cli import app
from charlm.errors import CharlmError, ConfigError
from charlm.nn.model import Model, ModelConfig
from charlm.text.vocab import SPECIALS, Vocab
from charlm.training import checkpoint
from charlm.training.trainer import Trainer, log_path

SMALL = dict(cell="gru", layers=1, hidden=16, embed=8, dropout=0.0, batch=4, bptt=16,
             eval_batch=2)
TINY = ["--cell", "gru", "--hidden", "16", "--layers", "1", "--embed", "8", "--dropout", "0",
        "--batch", "4", "--bptt", "16", "--eval-batch", "2"]
WORDS = ["the", "apple", "and", "pear", "salad", "green", "ripe", "a", "fig", "tart"]


def word_lines(n: int, seed: int) -> str:
    r = random.Random(seed)
    return "".join(" ".join(r.choice(WORDS) for _ in range(r.randint(2, 6))) + "\n"
                   for _ in range(n))


def char_lines(n: int, seed: int) -> str:
    r = random.Random(seed)
    return "".join("".join(r.choice("abcde ") for _ in range(r.randint(3, 12))) + "\n"
                   for _ in range(n))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def run(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


@pytest.fixture(autouse=True)
def _keep_signal_handlers():
    import signal
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def word_model(path: Path, words=WORDS, tokenizer="words") -> Path:
    vocab = Vocab([*SPECIALS, *words], "word", tokenizer=tokenizer)
    cfg = ModelConfig(cell="gru", layers=1, hidden=8, embed=4, dropout=0.0, dtype="float64")
    checkpoint.save(path, Model.create(cfg, vocab, np.random.default_rng(0)))
    return path


# ------------------------------------------------------------ 1: word-level prime
def test_word_prime_is_joined_to_the_continuation_in_cli_json_and_api(tmp_path):
    m = word_model(tmp_path / "w.npz")
    js = run("sample", "--model", m, "--prime", "the apple", "--seed", "2", "--length", "6",
             "--json")
    assert js.exit_code == 0, js.stderr
    row = json.loads(js.stdout)
    assert row["tokens"]
    # every token is a plain word: the joined text is the words with one space between
    expected = " ".join(["the", "apple", *row["tokens"]])
    assert row["text"] == expected
    plain = run("sample", "--model", m, "--prime", "the apple", "--seed", "2", "--length", "6")
    assert plain.stdout.rstrip("\n") == expected
    lm = charlm.load_model(m)
    assert lm.sample(seed=2, length=6, prime="the apple") == expected


# ------------------------------------------------------------- 11: detokenizing
@pytest.mark.parametrize("text, joined", [
    ("The game 's battle", "The game's battle"),
    ('He said " hello , world " and left .', 'He said "hello, world" and left.'),
    ("She said ' yes ' loudly .", "She said 'yes' loudly."),
    ("the students ' books", "the students' books"),
    ("well @-@ known ( really ) , 3 @,@ 000", "well-known (really), 3,000"),
])
def test_joining_follows_the_words_tokenizer(text, joined):
    probe = Vocab([*SPECIALS], "word")
    toks = probe.tokenize(text)
    vocab = Vocab([*SPECIALS, *dict.fromkeys(toks)], "word")
    assert vocab.decode(vocab.encode(text)) == joined


# ------------------------------------------------------------ 3: whitespace tokenizer
def test_whitespace_tokenizer_keeps_the_corpus_tokens_and_is_recorded(tmp_path):
    line = "mr. hydro-quebec H. said <unk> @-@ x\n"
    corpus = write(tmp_path / "c.txt", line * 40)
    out = tmp_path / "ws.npz"
    r = run("train", corpus, "--level", "word", "--tokenizer", "whitespace", "--steps", "2",
            "--out", out, *TINY)
    assert r.exit_code == 0, r.stderr
    meta = checkpoint.read(out)[0]
    assert meta["vocab"]["tokenizer"] == "whitespace"
    vocab = charlm.load_model(out).vocab
    pieces = [p for p in line.split() if p != "<unk>"]
    assert set(vocab.tokens[2:]) == set(pieces)
    ids = vocab.encode(line.rstrip("\n"))
    assert [vocab.tokens[i] for i in ids] == [p if p != "<unk>" else "<UNK>"
                                             for p in line.split()]
    # decoding joins with single spaces, nothing glued
    assert vocab.decode(vocab.encode("mr. @-@ H.")) == "mr. @-@ H."


def test_files_without_a_tokenizer_key_load_as_words():
    d = Vocab([*SPECIALS, "a"], "word").to_json()
    del d["tokenizer"], d["normalize"]
    v = Vocab.from_json(d)
    assert v.tokenizer == "words" and v.normalize is None
    assert v.tokenize("mr. x") == ["mr", ".", "x"]


# -------------------------------------------------- 2: eval = training's validation
@pytest.mark.parametrize("level, extra", [("char", []), ("word", ["--prose", "--lowercase"])])
def test_eval_reproduces_the_validation_figure_of_training(tmp_path, level, extra):
    make = char_lines if level == "char" else word_lines
    tr = write(tmp_path / "t.txt", make(120, 1))
    text = make(30, 2)
    if level == "word":   # wrapped prose: --prose joins the lines into sentences
        text = text.replace("\n", " ", 5).replace("pear", "Pear. The")
    va = write(tmp_path / "v.txt", text)
    out = tmp_path / "m.npz"
    r = run("train", tr, "--level", level, "--valid", va, "--steps", "6", "--eval-every", "3",
            "--out", out, *TINY, *extra)
    assert r.exit_code == 0, r.stderr
    log = [json.loads(x) for x in log_path(out).read_text().splitlines()]
    best = min(x["valid_loss"] for x in log)        # the saved model is the best one
    e = run("eval", va, "--model", out, "--json")
    assert e.exit_code == 0, e.stderr
    res = json.loads(e.stdout)
    assert f"{res['nll']:.4g}" == f"{best:.4g}"
    assert res["tokens"] == log[-1]["valid_tokens"]
    per_line = json.loads(run("eval", va, "--model", out, "--json", "--per-line").stdout)
    assert per_line["mode"] == "per_line" and per_line["nll"] != pytest.approx(res["nll"],
                                                                                rel=1e-6)


# ------------------------------------------------------ 4: the API follows the CLI
def test_api_train_follows_the_command_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "wt.txt", word_lines(80, 3))
    charlm.train("wt.txt", level="word", steps=2, **SMALL)
    assert Path("models/word.npz").is_file() and not Path("models/char.npz").exists()
    first = Path("models/word.npz").read_bytes()
    with pytest.raises(CharlmError, match="already exists"):
        charlm.train("wt.txt", level="word", steps=2, **SMALL)
    assert Path("models/word.npz").read_bytes() == first
    charlm.train("wt.txt", level="word", steps=2, force=True, **SMALL)
    assert Path("models/word.npz.bak").read_bytes() == first
    lm = charlm.train(level="word", steps=3, resume=True)    # corpus from the file
    assert lm.train_meta["run"]["step"] == 5
    (tmp_path / "l1.txt").write_bytes(("caf\xe9 " + word_lines(60, 4)).encode("latin-1"))
    lm = charlm.train("l1.txt", out="l1.npz", encoding="latin-1", steps=1, **SMALL)
    assert "\xe9" in lm.vocab.tokens


def test_api_refuses_unknown_options(tmp_path):
    with pytest.raises(ConfigError, match="hiden"):
        charlm.train(write(tmp_path / "c.txt", char_lines(50, 1)), out=tmp_path / "m.npz",
                     hiden=3)


# ------------------------------------------------------------- 5: zero limits
@pytest.mark.parametrize("flag", ["--time", "--steps", "--epochs"])
def test_zero_limit_is_an_error_that_says_what_to_write(tmp_path, flag):
    corpus = write(tmp_path / "c.txt", char_lines(100, 1))
    r = run("train", corpus, flag, "0", "--out", tmp_path / "m.npz", *TINY)
    assert r.exit_code == 2
    assert f"{flag} 0 is not a limit" in r.stderr and f"leave {flag} out" in r.stderr
    assert not (tmp_path / "m.npz").exists()
    with pytest.raises(ConfigError, match="not a limit"):
        charlm.train(corpus, out=tmp_path / "m.npz", **{flag[2:]: 0})


# ---------------------------------------------------------------- 6: resume
def test_resume_limits_count_for_this_invocation_and_nothing_is_said(tmp_path):
    corpus = write(tmp_path / "c.txt", char_lines(150, 1))
    out = tmp_path / "m.npz"
    assert run("train", corpus, "--steps", "3", "--out", out, *TINY).exit_code == 0
    r = run("train", "--resume", "--out", out, "--steps", "2")
    assert r.exit_code == 0, r.stderr
    assert checkpoint.load(out)[1]["run"]["step"] == 5
    log = log_path(out).read_text()
    hist = checkpoint.load(out)[1]["run"]["history"]
    r = run("train", "--resume", "--out", out)          # finished: nothing to train
    assert r.exit_code == 0, r.stderr
    assert "Nothing to train" in r.stderr
    assert log_path(out).read_text() == log
    assert checkpoint.load(out)[1]["run"]["history"] == hist


def test_resume_refuses_a_shape_change_and_logs_an_lr_change(tmp_path):
    corpus = write(tmp_path / "c.txt", char_lines(150, 1))
    out = tmp_path / "m.npz"
    assert run("train", corpus, "--steps", "3", "--out", out, *TINY).exit_code == 0
    r = run("train", "--resume", "--out", out, "--hidden", "64", "--steps", "1")
    assert r.exit_code == 2 and "--hidden 64" in r.stderr and "--hidden 16" in r.stderr
    r = run("train", "--resume", "--out", out, "--lr", "0.01", "--steps", "1")
    assert r.exit_code == 0, r.stderr
    assert "--lr 0.002 -> 0.01" in r.stderr
    last = checkpoint.load(out)[1]["run"]["history"][-1]
    assert last["changes"]["lr"] == [0.002, 0.01] and last["lr"] == 0.01
    assert json.loads(log_path(out).read_text().splitlines()[-1])["changes"]["lr"][1] == 0.01


# -------------------------------------------------------------- 7: divergence
def test_finite_divergence_is_caught_and_no_warning_reaches_stderr(tmp_path):
    corpus = write(tmp_path / "c.txt", char_lines(150, 1))
    out = tmp_path / "m.npz"
    r = run("train", corpus, "--optimizer", "sgd", "--lr", "1e30", "--clip", "0", "--steps",
            "20", "--out", out, *TINY)
    assert r.exit_code == 1
    assert "diverged" in r.stderr and "RuntimeWarning" not in r.stderr
    from charlm.training.trainer import DIVERGENCE_FACTOR
    model, meta, _ = checkpoint.load(out)
    V = len(model.vocab)
    # the saved model is the last good one: its loss is near an untrained model's ln V
    assert meta["run"]["best_valid"] < DIVERGENCE_FACTOR * math.log(V)
    s = run("score", "--model", out, "--json", "abc")
    json.loads(s.stdout)


def test_json_output_is_valid_for_a_model_that_overflows(tmp_path, capfd):
    path = word_model(tmp_path / "w.npz")
    model, _, _ = checkpoint.load(path)
    model.params["W_y"][...] = 1e300      # finite parameters, overflowing logits
    checkpoint.save(path, model)
    r = run("score", "--model", path, "--json", "the apple")
    assert r.exit_code == 0, r.stderr
    row = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    # the JSON parsed with NaN and Infinity refused (above): a number here is finite
    assert row["log_prob"] is None or math.isfinite(row["log_prob"])
    assert "RuntimeWarning" not in r.stderr and "RuntimeWarning" not in capfd.readouterr().err


# ------------------------------------------------------------------- 15: NFC
def test_text_is_nfc_normalised_on_the_way_in(tmp_path):
    composed, decomposed = "caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9")
    assert composed != decomposed
    corpus = write(tmp_path / "c.txt", (decomposed + " au lait\n" + char_lines(100, 1)))
    lm = charlm.train(corpus, out=tmp_path / "m.npz", steps=2, **SMALL)
    assert "\u00e9" in lm.vocab.tokens and "\u0301" not in lm.vocab.tokens
    assert checkpoint.read(tmp_path / "m.npz")[0]["vocab"]["normalize"] == "NFC"
    assert lm.score(composed).log_prob == lm.score(decomposed).log_prob
    assert lm.score(decomposed).n_oov == 0


# -------------------------------------------------------- 19: the recorded corpus
def test_corpus_is_recorded_and_a_changed_file_is_refused_on_resume(tmp_path):
    corpus = write(tmp_path / "c.txt", char_lines(150, 1))
    va = write(tmp_path / "v.txt", char_lines(20, 2))
    out = tmp_path / "m.npz"
    assert run("train", corpus, "--valid", va, "--steps", "2", "--out", out,
               *TINY).exit_code == 0
    rec = checkpoint.load(out)[1]["corpus"]

    def entry(p):
        data = p.read_bytes()
        return {"path": str(p.resolve()), "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}
    assert rec == {"files": [entry(corpus)], "valid": entry(va)}
    from charlm.training.runs import resume_command
    assert resume_command(out, rec) == f"charlm train --resume --out {out}"
    r = run("train", "--resume", "--out", out, "--steps", "1")
    assert r.exit_code == 0, r.stderr
    corpus.write_text(char_lines(150, 9), encoding="utf-8")
    r = run("train", "--resume", "--out", out, "--steps", "1")
    assert r.exit_code == 1 and "has changed" in r.stderr and str(corpus.resolve()) in r.stderr


# -------------------------------------------------------------- 18: init-from
def test_init_from_starts_from_the_saved_parameters_and_vocabulary(tmp_path, monkeypatch):
    a = tmp_path / "a.npz"
    charlm.train(write(tmp_path / "a.txt", char_lines(150, 1)), out=a, steps=3, **SMALL)
    src, _, _ = checkpoint.load(a)
    new_text = char_lines(150, 2) + "xyz xx\n"          # x, y, z are new characters
    seen = {}
    real = Trainer.run_loop

    def spy(self):
        seen["params"] = {k: v.copy() for k, v in self.model.params.items()}
        seen["opt"] = dict(self.opt.state)
        return real(self)
    monkeypatch.setattr(Trainer, "run_loop", spy)
    events = []
    b = tmp_path / "b.npz"
    lm = charlm.train(write(tmp_path / "b.txt", new_text), out=b, init_from=a, steps=2,
                      valid_fraction=0.0, callback=events.append, batch=4, bptt=16)
    assert lm.vocab.tokens == src.vocab.tokens
    for k, v in src.params.items():
        np.testing.assert_array_equal(seen["params"][k], v)
    assert seen["opt"] == {}                             # a fresh optimizer
    n_new = sum(c in "xyz" for c in new_text)
    warn = [e["message"] for e in events if e["kind"] == "warning"]
    assert any(f"{n_new} of the" in w and "<UNK>" in w for w in warn), warn
    meta = checkpoint.load(b)[1]
    assert meta["run"]["step"] == 2 and meta["optim_t"] == 2
    assert meta["config"]["init_from"] == str(a.resolve())
    with pytest.raises(ConfigError, match="--hidden"):
        charlm.train(tmp_path / "b.txt", out=tmp_path / "c.npz", init_from=a, hidden=32,
                     steps=1)


# ------------------------------------------------------------ 21: init-scale
def test_init_scale_draws_every_weight_uniformly(tmp_path, monkeypatch):
    seen = {}
    real = Trainer.run_loop

    def spy(self):
        seen.update({k: v.copy() for k, v in self.model.params.items()})
        return real(self)
    monkeypatch.setattr(Trainer, "run_loop", spy)
    out = tmp_path / "m.npz"
    r = run("train", write(tmp_path / "c.txt", char_lines(150, 1)), "--init-scale", "0.05",
            "--steps", "1", "--out", out, *TINY)
    assert r.exit_code == 0, r.stderr
    allw = np.concatenate([v.ravel() for v in seen.values()])
    assert np.abs(allw).max() <= 0.05 and np.abs(allw).max() > 0.049
    assert abs(allw.mean()) < 0.005 and allw.std() == pytest.approx(0.05 / math.sqrt(3),
                                                                     rel=0.05)
    assert checkpoint.load(out)[1]["config"]["init_scale"] == 0.05


# --------------------------------------------------------- 22: progress from the API
def test_progress_true_prints_plain_lines_to_stderr(tmp_path, capsys):
    charlm.train(write(tmp_path / "c.txt", char_lines(150, 1)), out=tmp_path / "m.npz",
                 steps=4, eval_every=2, progress=True, **SMALL)
    cap = capsys.readouterr()
    lines = cap.err.splitlines()
    assert cap.out == "" and "\r" not in cap.err
    assert [int(x.split()[1]) for x in lines if x.startswith("step ")] == [2, 4]
    assert all("valid" in x for x in lines if x.startswith("step "))
