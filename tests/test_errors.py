"""Bad input, faults and interruptions: every one gets a single clear line and a sane exit.

The contract: a bad input prints exactly one non-empty line on stderr, ``Error: <what went
wrong>. <what to do>``, exits non-zero (1 for bad data or files, 2 for bad usage), shows no
traceback (unless ``--debug``), and damages no file. Warnings (the input is odd but usable) are
one ``Warning:`` line each and exit 0. Most cases run the command line in-process (typer's
CliRunner keeps stdout and stderr apart); a few run a real process, where a traceback would
really be printed.

Everything is tiny: an 8-unit, 1-layer model trained for 2 steps on a few kB of text.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from charlm.cli import app
from charlm.errors import CharlmError, ModelFileError, TrainingDiverged
from charlm.nn.model import Model, ModelConfig
from charlm.tasks.lm import LMTask
from charlm.tasks.stream import prepare_corpus
from charlm.training import checkpoint
from charlm.training.trainer import MAX_DIVERGENCES, TrainConfig, Trainer

TINY = ["--hidden", "8", "--layers", "1", "--embed", "4", "--steps", "2", "--batch", "4",
        "--bptt", "16", "--eval-batch", "4"]
CHARLM = [sys.executable, "-m", "charlm"]


# ------------------------------------------------------------------ helpers
@pytest.fixture(autouse=True)
def _restore_signal_handlers():
    """`charlm train` installs SIGINT/SIGTERM handlers; do not leave them in pytest."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def run(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def no_traceback(r) -> None:
    """Nothing escaped the command (CliRunner keeps an escaped exception in r.exception)."""
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout


def lines(text: str) -> list[str]:
    """Non-empty lines; a progress bar's carriage returns count as line ends."""
    return [ln for ln in text.replace("\r", "\n").split("\n") if ln.strip()]


def assert_error(r, code: int, *mentions: str) -> str:
    """Exactly one non-empty stderr line, `Error: <what>. <what to do>`, and exit ``code``."""
    no_traceback(r)
    assert r.exit_code == code, (r.exit_code, r.stderr)
    err = lines(r.stderr)
    assert len(err) == 1, r.stderr
    line = err[0]
    assert line.startswith("Error: "), line
    assert line.rstrip().endswith((".", ")", "`")), line
    for m in mentions:
        assert m in line, (m, line)
    return line


def assert_last_error(r, code: int, *mentions: str) -> str:
    """For training, which reports progress first: one Error line, the last line."""
    no_traceback(r)
    assert r.exit_code == code, (r.exit_code, r.stderr)
    err = lines(r.stderr)
    errors = [ln for ln in err if ln.startswith("Error:")]
    assert len(errors) == 1 and err[-1] == errors[0], r.stderr
    for m in mentions:
        assert m in errors[0], (m, errors[0])
    return errors[0]


def assert_warning(r, *mentions: str) -> str:
    no_traceback(r)
    assert r.exit_code == 0, (r.exit_code, r.stderr)
    err = lines(r.stderr)
    assert len(err) == 1 and err[0].startswith("Warning: "), r.stderr
    for m in mentions:
        assert m in err[0], (m, err[0])
    return err[0]


def snapshot(d: Path) -> dict[str, bytes]:
    """Every file under d, with its bytes (directories as None)."""
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(d.rglob("*"))}


def corpus_text(n: int = 200, seed: int = 0) -> str:
    r = random.Random(seed)
    words = "the quick brown fox jumps over a lazy dog and then runs away".split()
    return "".join(" ".join(r.choice(words) for _ in range(6)) + "\n" for _ in range(n))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A corpus and a char model trained on it (bptt 16); read-only for the tests."""
    d = tmp_path_factory.mktemp("lab")
    corpus = d / "corpus.txt"
    corpus.write_text(corpus_text(), encoding="utf-8")
    model = d / "model.npz"
    r = run("train", corpus, *TINY, "--out", model)
    assert r.exit_code == 0, r.stderr
    return {"dir": d, "corpus": corpus, "model": model}


@pytest.fixture
def model_copy(lab, tmp_path):
    p = tmp_path / "m.npz"
    p.write_bytes(lab["model"].read_bytes())
    return p


# =============================================================== corpora
def _bad_corpus(kind: str, d: Path) -> Path:
    p = d / "corpus.txt"
    if kind == "missing":
        return d / "no-such-file.txt"
    if kind == "directory":
        (d / "texts").mkdir()
        return d / "texts"
    p.write_bytes({"empty": b"",
                   "whitespace": b"  \n\n\t \n   ",
                   "binary": b"hello\x00world\x01\x02\n" * 20,
                   }[kind])
    return p


@pytest.mark.parametrize("kind, mention", [
    ("missing", "No such file"),
    ("directory", "is a directory"),
    ("empty", "empty"),
    ("whitespace", "empty"),
    ("binary", "binary"),
])
def test_train_refuses_a_bad_corpus(tmp_path, kind, mention):
    corpus = _bad_corpus(kind, tmp_path)
    before = snapshot(tmp_path)
    r = run("train", corpus, *TINY, "--out", tmp_path / "out.npz")
    assert_error(r, 1, mention)
    assert snapshot(tmp_path) == before          # nothing written, nothing changed


def test_not_utf8_says_where_and_offers_encoding_which_then_works(tmp_path):
    text = corpus_text(100)
    lines_ = text.split("\n")
    lines_[3] = "un caf\u00e9 au lait " + lines_[3]
    data = "\n".join(lines_).encode("latin-1")
    offset = data.index(b"\xe9")
    corpus = tmp_path / "latin.txt"
    corpus.write_bytes(data)
    out = tmp_path / "out.npz"
    r = run("train", corpus, *TINY, "--out", out)
    line = assert_error(r, 1, "latin.txt", "not valid utf-8", f"byte {offset}", "(line 4)",
                        "--encoding latin-1")
    assert not out.exists()
    r = run("train", corpus, *TINY, "--out", out, "--encoding", "latin-1")
    assert r.exit_code == 0, r.stderr
    assert "\u00e9" in checkpoint.load(out)[0].vocab.tokens
    # the same message from eval and score --file
    r = run("eval", corpus, "--model", out)
    assert assert_error(r, 1) == line
    r = run("score", "--file", corpus, "--model", out)
    assert assert_error(r, 1) == line
    r = run("score", "--file", corpus, "--model", out, "--encoding", "latin-1", "--json")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 100


def test_unknown_encoding_is_a_usage_error(lab, tmp_path):
    r = run("train", lab["corpus"], *TINY, "--out", tmp_path / "o.npz", "--encoding", "klingon")
    assert_error(r, 2, "Unknown encoding 'klingon'")


@pytest.mark.parametrize("text, opts, mentions", [
    # 200 lines of 6 words: ~5,000 characters, fewer than 64 rows x 128 steps
    (corpus_text(), ["--batch", "64", "--bptt", "128"], ["--batch 64", "--bptt 128"]),
    (corpus_text(1), ["--valid-fraction", "0"], ["--batch 4", "--bptt 16"]),
    # one short line: nothing is left after it for a validation part
    ("the quick brown fox\n", [], ["validation", "--valid-fraction 0"]),
    # a validation part exists but holds fewer tokens than --eval-batch rows
    (corpus_text(100), ["--eval-batch", "5000"], ["validation", "--eval-batch 5000"]),
    # --min-count drops every token: only <EOS> and <UNK> would be left
    (corpus_text(), ["--min-count", "100000"], ["--min-count 100000"]),
])
def test_corpus_too_small(tmp_path, text, opts, mentions):
    corpus = tmp_path / "small.txt"
    corpus.write_text(text, encoding="utf-8")
    before = snapshot(tmp_path)
    r = run("train", corpus, *TINY, *opts, "--out", tmp_path / "o.npz")
    assert_error(r, 1, *mentions)
    assert snapshot(tmp_path) == before


def test_a_single_repeated_character_trains_with_a_warning(tmp_path):
    """Decision: 'aaaa…' lines give the vocabulary {<EOS>, <UNK>, a}. That is degenerate but a
    well-defined language model (it learns where lines end, i.e. their length distribution),
    so it trains, with one Warning line; only a vocabulary of nothing but <EOS> and <UNK>
    (nothing to learn) is refused (see test_corpus_too_small, --min-count)."""
    r_ = random.Random(1)
    corpus = tmp_path / "aaa.txt"
    corpus.write_text("".join("a" * r_.randint(1, 30) + "\n" for _ in range(300)))
    out = tmp_path / "a.npz"
    r = run("train", corpus, *TINY, "--out", out)
    no_traceback(r)
    assert r.exit_code == 0, r.stderr
    warnings = [ln for ln in lines(r.stderr) if ln.startswith("Warning:")]
    assert warnings == ["Warning: the vocabulary has one token besides <EOS> and <UNK> ('a'); "
                        "the model can learn little more than where sequences end."]
    model = checkpoint.load(out)[0]
    assert model.vocab.tokens == ["<EOS>", "<UNK>", "a"]
    r = run("score", "--model", out, "--json", "aaaa")
    assert r.exit_code == 0 and json.loads(r.stdout)["log_prob"] < 0


def test_missing_validation_file(lab, tmp_path):
    r = run("train", lab["corpus"], *TINY, "--out", tmp_path / "o.npz",
            "--valid", tmp_path / "nope.txt")
    assert_error(r, 1, "No such file", "nope.txt")
    assert not (tmp_path / "o.npz").exists()


# =============================================================== options
@pytest.mark.parametrize("opts, mention", [
    (["--hidden", "0"], "--hidden"),
    (["--layers", "0"], "--layers"),
    (["--batch", "0"], "--batch"),
    (["--bptt", "0"], "--bptt"),
    (["--embed", "-1"], "--embed"),
    (["--eval-batch", "0"], "--eval-batch"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "-1"], "--lr"),
    (["--lr", "0"], "--lr"),
    (["--clip", "-1"], "--clip"),
    (["--clip", "nan"], "--clip"),
    (["--momentum", "-0.5"], "--momentum"),
    (["--decay", "0"], "--decay"),
    (["--decay", "1.5"], "--decay"),
    (["--decay-after", "-1"], "--decay-after"),
    (["--dropout", "1"], "--dropout"),
    (["--input-dropout", "1"], "--input-dropout"),
    (["--input-dropout", "-0.1"], "--input-dropout"),
    (["--valid-fraction", "1"], "--valid-fraction"),
    (["--vocab-size", "2"], "--vocab-size"),
    (["--min-count", "0"], "--min-count"),
    (["--time", "ten minutes"], "'ten minutes'"),
    (["--time", "-5m"], "'-5m'"),
    (["--steps", "-1"], "--steps"),
    (["--epochs", "-1"], "--epochs"),
    (["--cell", "gru", "--peephole"], "--peephole"),
    (["--cell", "rnn", "--peephole"], "--peephole"),
    (["--cell", "lstm", "--simplified"], "--simplified"),
    (["--cell", "lstm", "--activation", "relu"], "--activation"),
    (["--tie-weights", "--embed", "4", "--hidden", "8"], "--embed must equal --hidden"),
    (["--tie-weights", "--embed", "0"], "--tie-weights"),
    (["--cell", "gru", "--activation", "relu"], "--activation"),
    (["--activation", "sigmoid", "--cell", "rnn"], "'sigmoid'"),
    (["--resume", "--force"], "--resume"),
    (["--cell", "transformer"], "'transformer'"),
    (["--optimizer", "rmsprop"], "'rmsprop'"),
    (["--level", "sentence"], "'sentence'"),
    (["--schedule", "cosine"], "'cosine'"),
    (["--clip-mode", "max"], "'max'"),
    (["--dtype", "float16"], "'float16'"),
    (["--seed", "-1"], "--seed"),
])
def test_train_refuses_bad_options(lab, tmp_path, opts, mention):
    out = tmp_path / "o.npz"
    r = run("train", lab["corpus"], *TINY, "--out", out, *opts)
    assert_error(r, 2, mention)
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("opts", [["--hidden", "abc"], ["--lr", "fast"], ["--bogus"]])
def test_typer_usage_errors_exit_2_without_traceback(lab, tmp_path, opts):
    """typer's own usage errors: exit 2, no traceback (one line: see test_day2_cli)."""
    r = run("train", lab["corpus"], "--out", tmp_path / "o.npz", *opts)
    no_traceback(r)
    assert r.exit_code == 2 and "Error" in r.stderr and not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("opts, mention", [
    (["--top-p", "0"], "--top-p"),
    (["--top-p", "1.5"], "--top-p"),
    (["--top-p", "nan"], "--top-p"),
    (["--temperature", "-1"], "--temperature"),
    (["--temperature", "nan"], "--temperature"),
    (["--temperature", "inf"], "--temperature"),
    (["--top-k", "-1"], "--top-k"),
    (["-n", "0"], "-n/--num"),
    (["--length", "0"], "--length"),
    (["--level", "sentence"], "'sentence'"),
    (["--seed", "-1"], "--seed"),
])
def test_sample_refuses_bad_options(lab, opts, mention):
    r = run("sample", "--model", lab["model"], *opts)
    assert_error(r, 2, mention)
    assert r.stdout == ""


@pytest.mark.parametrize("cmd", [
    ["score", "--base", "3", "hello"],
    ["score", "--level", "sentence", "hello"],
    ["eval", "--batch", "0", "CORPUS"],
])
def test_score_and_eval_refuse_bad_options(lab, cmd):
    cmd = [lab["corpus"] if a == "CORPUS" else a for a in cmd]
    r = run(*cmd, "--model", lab["model"])
    assert_error(r, 2)


def test_score_with_nothing_to_score(lab):
    r = run("score", "--model", lab["model"])
    assert_error(r, 2, "Nothing to score")


@pytest.mark.parametrize("content", [b"", b"\n  \n\n"])
def test_eval_of_an_empty_file_is_bad_data(lab, tmp_path, content):
    f = tmp_path / "held-out.txt"
    f.write_bytes(content)
    r = run("eval", f, "--model", lab["model"])
    assert_error(r, 1, "no text to evaluate")


@pytest.mark.parametrize("kind, mention", [("missing", "No such file"),
                                           ("directory", "is a directory"),
                                           ("binary", "binary")])
def test_eval_of_a_bad_file(lab, tmp_path, kind, mention):
    r = run("eval", _bad_corpus(kind, tmp_path), "--model", lab["model"])
    assert_error(r, 1, mention)


# =============================================================== model files
class _Marker:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _arrays(good: Path) -> dict[str, np.ndarray]:
    with np.load(good, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _meta(arrays, **changes) -> dict:
    meta = json.loads(str(arrays["meta"]))
    meta.update(changes)
    return meta


def make_bad_model(kind: str, good: Path, d: Path, marker: Path) -> Path:
    """A damaged or foreign model file of the given kind, next to nothing else."""
    p = d / "bad.npz"
    data = good.read_bytes()
    a = _arrays(good)
    if kind == "missing":
        return d / "nothing-here.npz"
    if kind == "directory":
        p.mkdir()
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        p.write_bytes(data[: len(data) // 2])
    elif kind == "random-bytes":
        p.write_bytes(random.Random(0).randbytes(4096))
    elif kind == "flipped-byte":          # damage inside an array: the zip CRC no longer fits
        i = len(data) // 3
        p.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    elif kind == "npy":
        with open(p, "wb") as f:
            np.save(f, np.arange(10.0))
    elif kind == "plain-pickle":
        p.write_bytes(pickle.dumps({"param/W_y": [1, 2, 3]}))
    elif kind == "foreign-npz":
        np.savez(p, weights=np.ones((3, 3)), labels=np.arange(3))
    elif kind == "not-charlm-meta":
        np.savez(p, **{**a, "meta": np.array(json.dumps({"format": "other-tool"}))})
    elif kind == "wrong-shape":
        np.savez(p, **{**a, "param/W_y": a["param/W_y"].reshape(-1)})
    elif kind == "transposed":
        np.savez(p, **{**a, "param/W_y": np.ascontiguousarray(a["param/W_y"].T)})
    elif kind == "missing-param":
        np.savez(p, **{k: v for k, v in a.items() if k != "param/b_y"})
    elif kind == "integer-param":
        np.savez(p, **{**a, "param/W_y": a["param/W_y"].astype(np.int32)})
    elif kind == "nan-param":
        np.savez(p, **{**a, "param/b_y": np.full_like(a["param/b_y"], np.nan)})
    elif kind == "newer-version":
        np.savez(p, **{**a, "meta": np.array(json.dumps(_meta(a, format_version=999)))})
    elif kind == "bad-version":
        np.savez(p, **{**a, "meta": np.array(json.dumps(_meta(a, format_version="one")))})
    elif kind == "meta-not-json":
        np.savez(p, **{**a, "meta": np.array("{this is not json")})
    elif kind == "bad-config":
        meta = _meta(a)
        meta["config"]["hidden"] = -3
        np.savez(p, **{**a, "meta": np.array(json.dumps(meta))})
    elif kind == "bad-vocab":
        np.savez(p, **{**a, "meta": np.array(json.dumps(_meta(a, vocab="abc")))})
    elif kind == "pickled-param":           # a valid-looking model with one pickled array
        evil = np.array([_Marker(str(marker))], dtype=object)
        np.savez(p, **{**a, "param/W_y": evil})
    elif kind == "pickled-extra":
        evil = np.array([{"a": 1}, _Marker(str(marker))], dtype=object)
        np.savez(p, **{**a, "train/extra": evil})
    else:
        raise AssertionError(kind)
    return p


MODEL_FILE_CASES = [
    ("missing", "No model file"),
    ("directory", "is a directory"),
    ("empty", "not a charlm model file"),
    ("truncated", "not a charlm model file"),
    ("random-bytes", "not a charlm model file"),
    ("flipped-byte", "damaged"),
    ("npy", "not a charlm model file"),
    ("plain-pickle", "not a charlm model file"),
    ("foreign-npz", "not a charlm model"),
    ("not-charlm-meta", "not a charlm model"),
    ("wrong-shape", "parameter W_y has shape"),
    ("transposed", "parameter W_y has shape"),
    ("missing-param", "lacks parameters b_y"),
    ("integer-param", "expected"),
    ("nan-param", "NaN"),
    ("newer-version", "version 999, newer"),
    ("bad-version", "invalid model format version"),
    ("meta-not-json", "damaged meta"),
    ("bad-config", "--hidden must be at least 1"),
    ("bad-vocab", "damaged config or vocabulary"),
    ("pickled-param", "pickled"),
    ("pickled-extra", "pickled"),
]
COMMANDS = {
    "sample": lambda m, lab: ["sample", "--model", m, "--length", "5"],
    "score": lambda m, lab: ["score", "--model", m, "some text"],
    "eval": lambda m, lab: ["eval", lab["corpus"], "--model", m],
    "info": lambda m, lab: ["info", "--model", m],
}


def test_the_pickle_payload_really_runs_code_when_unpickled(lab, tmp_path):
    """Positive control for the pickled-* cases: loading them WITH pickle creates the marker."""
    marker = tmp_path / "marker"
    p = make_bad_model("pickled-param", lab["model"], tmp_path, marker)
    with np.load(p, allow_pickle=True) as z:
        z["param/W_y"]
    assert marker.exists()


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind, mention", MODEL_FILE_CASES)
def test_bad_model_files_are_refused(lab, tmp_path, command, kind, mention):
    marker = tmp_path / "marker"
    bad = make_bad_model(kind, lab["model"], tmp_path, marker)
    before = snapshot(tmp_path)
    r = run(*COMMANDS[command](bad, lab))
    line = assert_error(r, 1, mention)
    assert r.stdout == ""
    if kind not in ("missing", "directory"):
        assert "Check the path" in line or "Upgrade charlm" in line or "charlm wrote" in line \
            or "written by `charlm train`" in line
    assert not marker.exists(), "a pickled object was loaded: code ran"
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["truncated", "wrong-shape", "pickled-param", "newer-version"])
def test_resume_from_a_bad_model_file(lab, tmp_path, kind):
    marker = tmp_path / "marker"
    bad = make_bad_model(kind, lab["model"], tmp_path, marker)
    before = snapshot(tmp_path)
    r = run("train", lab["corpus"], *TINY, "--out", bad, "--resume")
    assert_error(r, 1)
    assert not marker.exists()
    assert snapshot(tmp_path) == before


def _damage_training_state(kind: str, good: Path, p: Path) -> None:
    a = _arrays(good)
    meta = _meta(a)
    if kind == "state-missing":
        a = {k: v for k, v in a.items() if k != "train/param/W_y"}
    elif kind == "state-wrong-shape":
        a["train/param/W_y"] = a["train/param/W_y"][:3]
    elif kind == "optimizer-wrong-shape":
        k = next(k for k in a if k.startswith("train/optim/"))
        a[k] = a[k].ravel()
    elif kind == "run-unknown-field":
        meta["train"]["run"]["bogus"] = 1
    elif kind == "rng-garbage":
        meta["train"]["rng"] = {"bit_generator": "nonsense"}
    elif kind == "position-out-of-range":
        meta["train"]["run"]["window"] = 10 ** 6
    np.savez(p, **{**a, "meta": np.array(json.dumps(meta))})


@pytest.mark.parametrize("kind", ["state-missing", "state-wrong-shape", "optimizer-wrong-shape",
                                  "run-unknown-field", "rng-garbage", "position-out-of-range"])
def test_resume_from_a_damaged_training_state(lab, tmp_path, kind):
    """The model part loads (sample/score would work); only the run to continue is damaged."""
    p = tmp_path / "m.npz"
    _damage_training_state(kind, lab["model"], p)
    checkpoint.load(p)
    before = snapshot(tmp_path)
    r = run("train", lab["corpus"], "--out", p, "--resume", "--steps", "4")
    assert_error(r, 1, str(p))
    assert snapshot(tmp_path) == before


def test_resume_with_another_corpus(lab, tmp_path):
    """The text twice: every count doubles, so the vocabulary is the same; the run is not."""
    out = tmp_path / "m.npz"
    assert run("train", lab["corpus"], *TINY, "--valid-fraction", "0", "--out", out).exit_code == 0
    twice = tmp_path / "twice.txt"
    twice.write_text(lab["corpus"].read_text() * 2)
    before = snapshot(tmp_path)
    r = run("train", twice, "--out", out, "--resume", "--steps", "4")
    assert_error(r, 2, "This corpus gives 11,304 training tokens", "trained on 5,652",
                 "Resume with the same corpus")
    assert snapshot(tmp_path) == before


def test_library_raises_model_file_errors(lab, tmp_path):
    import charlm
    for kind, _ in MODEL_FILE_CASES:
        d = tmp_path / kind
        d.mkdir()
        bad = make_bad_model(kind, lab["model"], d, d / "marker")
        with pytest.raises(ModelFileError):
            charlm.load_model(bad)
        assert not (d / "marker").exists()


def test_debug_shows_the_traceback(lab, tmp_path):
    bad = make_bad_model("truncated", lab["model"], tmp_path, tmp_path / "marker")
    r = run("--debug", "info", "--model", bad)
    assert isinstance(r.exception, ModelFileError)


# =============================================================== use
def test_score_an_empty_sentence_warns(lab):
    r = run("score", "--model", lab["model"], "--json", "")
    assert_warning(r, "empty sentence", "<EOS>")
    res = json.loads(r.stdout)
    assert res["n_tokens"] == 1 and math.isfinite(res["log_prob"]) and res["log_prob"] < 0


@pytest.mark.parametrize("text", ["ZZZ", "[/]", "ÉÀ€"])
def test_score_only_unknown_tokens_warns(lab, text):
    r = run("score", "--model", lab["model"], "--json", text)
    assert_warning(r, "every token", repr(text), "<UNK>")
    res = json.loads(r.stdout)
    assert res["n_oov"] == len(text) and math.isfinite(res["log_prob"])


@pytest.mark.parametrize("text", ["the [red]fox[/red]", "[/x] a", ":smile: the", "[bold]"])
def test_markup_in_sentences_is_printed_as_is(lab, text):
    """Sentences are data: rich markup or emoji codes in them are neither applied nor fatal."""
    r = run("score", "--model", lab["model"], text)
    no_traceback(r)
    assert r.exit_code == 0
    assert f"P({text}) = " in r.stdout
    r = run("score", "--model", lab["model"], "--per-token", text, "fox")
    assert r.exit_code == 0 and text in r.stdout
    no_traceback(r)


def test_prime_longer_than_training_windows_warns(lab):
    prime = "the quick brown fox jumps over a lazy dog"   # 41 characters > --bptt 16
    r = run("sample", "--model", lab["model"], "--prime", prime, "--length", "5", "--seed", "1")
    assert_warning(r, f"the prime is {len(prime)} tokens", "16-step windows")
    assert r.stdout.startswith(prime)


def test_prime_with_unknown_characters_warns(lab):
    r = run("sample", "--model", lab["model"], "--prime", "QX", "--length", "5")
    assert_warning(r, "2 token(s) outside the vocabulary", "'Q' 'X'")


def test_undecodable_command_line_text_is_refused(lab):
    """Bytes the terminal's encoding cannot decode reach Python as lone surrogates."""
    r = run("score", "--model", lab["model"], "caf\udce9")
    assert_error(r, 1, "not valid UTF-8", "locale")
    r = run("sample", "--model", lab["model"], "--prime", "caf\udce9")
    assert_error(r, 1, "--prime", "not valid UTF-8")


def test_score_from_stdin_with_bad_bytes(lab):
    r = run("score", "--model", lab["model"], "-", input=b"the fox\nab\xffc\n")
    assert_error(r, 1, "standard input", "byte 10 (line 2)", "--encoding")
    r = run("score", "--model", lab["model"], "--file", "-", "--encoding", "latin-1",
            "--json", input=b"the fox\nab\xffc\n")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 2


# =============================================================== never destroy a model
def test_existing_out_without_resume_or_force(lab, model_copy):
    before = model_copy.read_bytes()
    r = run("train", lab["corpus"], *TINY, "--out", model_copy)
    assert_error(r, 1, "already exists", "--resume", "--force")
    assert model_copy.read_bytes() == before


def test_resume_of_nothing(lab, tmp_path):
    r = run("train", lab["corpus"], *TINY, "--out", tmp_path / "none.npz", "--resume")
    assert_error(r, 1, "Nothing to resume")
    assert list(tmp_path.iterdir()) == []


def test_out_is_a_directory(lab, tmp_path):
    (tmp_path / "models").mkdir()
    before = snapshot(tmp_path)
    for extra in ([], ["--force"]):
        r = run("train", lab["corpus"], *TINY, "--out", tmp_path / "models", *extra)
        assert_error(r, 2, "is a directory")
        assert snapshot(tmp_path) == before      # --force did not move the directory away


def test_out_that_cannot_be_written_fails_before_training(lab, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    r = run("train", lab["corpus"], *TINY, "--out", blocker / "m.npz")
    assert_error(r, 1, "Cannot write the model file", "a-file is not a directory", "--out")
    assert blocker.read_text() == "not a directory"


# =============================================================== atomic writes
def _boom_savez(exc):
    def savez(file, *args, **kwds):
        file.write(b"PK\x03\x04 the first bytes of a model file, then a failure")
        raise exc
    return savez


@pytest.mark.parametrize("exc, raised", [(OSError(28, "No space left on device"), ModelFileError),
                                         (KeyboardInterrupt(), KeyboardInterrupt)],
                         ids=["disk-full", "ctrl-c"])
def test_failed_save_keeps_the_old_file_and_leaves_no_temp_file(model_copy, monkeypatch, exc,
                                                                raised):
    model, meta, _ = checkpoint.load(model_copy)
    before = snapshot(model_copy.parent)
    monkeypatch.setattr(checkpoint.np, "savez", _boom_savez(exc))
    with pytest.raises(raised):
        checkpoint.save(model_copy, model, meta)
    assert snapshot(model_copy.parent) == before


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_failure_after_writing_keeps_the_old_file(model_copy, monkeypatch, where):
    model, meta, _ = checkpoint.load(model_copy)
    before = snapshot(model_copy.parent)

    def boom(*a, **k):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(checkpoint.os, where, boom)
    with pytest.raises(ModelFileError, match="Input/output error.*unchanged"):
        checkpoint.save(model_copy, model, meta)
    monkeypatch.undo()
    assert snapshot(model_copy.parent) == before


def test_training_whose_save_fails_keeps_the_model(lab, model_copy, monkeypatch):
    """--resume replaces the file in place; a failing write must leave the old one whole."""
    log = model_copy.with_name("m.log.jsonl")
    before = model_copy.read_bytes()
    disk_full = OSError(28, "No space left on device")
    monkeypatch.setattr(checkpoint.np, "savez", _boom_savez(disk_full))
    r = run("train", lab["corpus"], "--out", model_copy, "--resume", "--steps", "3")
    assert_last_error(r, 1, f"Could not write the model file {model_copy}",
                      "No space left on device", "unchanged")
    assert model_copy.read_bytes() == before
    assert sorted(p.name for p in model_copy.parent.iterdir()) == \
        sorted(["m.npz"] + ([log.name] if log.exists() else []))
    checkpoint.load(model_copy)


# =============================================================== divergence
def _trainer(tmp_path, **opts) -> Trainer:
    cfg = TrainConfig(**{k: v for k, v in opts.items() if k in TrainConfig.__annotations__})
    mcfg = ModelConfig(**{k: v for k, v in opts.items() if k in ModelConfig.__annotations__})
    corpus = prepare_corpus([corpus_text(60)], cfg)
    model = Model.create(mcfg, corpus.vocab, np.random.default_rng(cfg.seed))
    return Trainer(model, LMTask(corpus, cfg, model), cfg, tmp_path / "m.npz")


SMALL = dict(cell="lstm", layers=1, hidden=8, embed=4, dropout=0.0, batch=4, bptt=8,
             eval_batch=2, eval_every=0, optimizer="adam", lr=0.01)


def _copies(tr: Trainer) -> tuple[dict, dict, int]:
    return ({k: v.copy() for k, v in tr.model.params.items()},
            {k: v.copy() for k, v in tr.opt.state.items()}, tr.opt.t)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _inject(tr: Trainer, where: str, bad_steps: set[int]) -> None:
    """Make training step k (1-based) go wrong in the loss, a gradient or the update."""
    real_loss, real_backward, real_update = tr.model.loss, tr.model.backward, tr.opt.update

    def loss(X, Y, state, rng=None):
        L, nll, s, cache = real_loss(X, Y, state, rng)
        if rng is not None and tr.run.step + 1 in bad_steps and where == "loss":
            L = float("nan")
        return L, nll, s, cache

    def backward(cache):
        grads, ds = real_backward(cache)
        if tr.run.step + 1 in bad_steps and where == "gradient":
            grads["W_y"][0, 0] = np.inf
        return grads, ds

    def update(params, grads):
        real_update(params, grads)
        if tr.run.step + 1 in bad_steps and where == "update":
            params["L1.W_aa"][0, 0] = np.inf     # finite gradients, overflowing parameters

    tr.model.loss, tr.model.backward, tr.opt.update = loss, backward, update


@pytest.mark.parametrize("where", ["loss", "gradient", "update"])
def test_a_non_finite_step_is_undone_and_lowers_the_lr(tmp_path, where):
    tr = _trainer(tmp_path, steps=6, **SMALL)
    _inject(tr, where, {3, 4})
    after: dict[int, tuple] = {}
    events = []

    def callback(e):
        events.append(e)
        if e["kind"] == "step":
            after[e["step"]] = _copies(tr)
    tr.callback = callback
    tr.run_loop()
    # steps 3 and 4 changed nothing: parameters, optimizer moments and its step count
    for k in (3, 4):
        assert _same(after[k][0], after[2][0]) and _same(after[k][1], after[2][1])
        assert after[k][2] == after[2][2] == 2
    assert not _same(after[5][0], after[4][0])
    assert all(np.isfinite(v).all() for v in tr.model.params.values())
    warnings = [e["message"] for e in events if e["kind"] == "warning"]
    assert len(warnings) == 2 and all("undone" in w for w in warnings)
    assert "lowered to 0.005" in warnings[0] and "lowered to 0.0025" in warnings[1]
    assert tr.run.lr == pytest.approx(0.0025) and tr.opt.lr == tr.run.lr
    losses = {e["step"]: e["loss"] for e in events if e["kind"] == "step"}
    assert losses[3] is None and losses[4] is None and losses[5] is not None
    assert tr.run.divergences == 0                # a good step resets the count


@pytest.mark.parametrize("valid_fraction", [0.0, 0.2])
def test_repeated_divergence_stops_and_saves_the_last_good_model(tmp_path, valid_fraction):
    tr = _trainer(tmp_path, steps=50, valid_fraction=valid_fraction,
                  **dict(SMALL, eval_every=1))
    _inject(tr, "update", set(range(4, 100)))
    good: dict[int, tuple] = {}
    tr.callback = lambda e: good.__setitem__(e["step"], _copies(tr)) if e["kind"] == "step" \
        else None
    with pytest.raises(TrainingDiverged, match="diverged 5 times in a row"):
        tr.run_loop()
    assert max(good) == 3 + MAX_DIVERGENCES - 1   # steps 4.. failed; the 5th failure stopped it
    model, meta, arrays = checkpoint.load(tr.out)   # loads: every parameter is finite
    for k, v in arrays.items():
        if v.dtype.kind == "f":
            assert np.isfinite(v).all(), k
    latest = {k[len("train/param/"):]: v for k, v in arrays.items()
              if k.startswith("train/param/")}
    assert _same(latest, good[3][0])               # the parameters after the last good step
    if valid_fraction == 0:                        # no validation: the model is that too
        assert _same(model.params, good[3][0])
    assert meta["run"]["lr"] == pytest.approx(0.01 / 2 ** MAX_DIVERGENCES)


def test_cli_divergence_warns_then_stops_with_an_error(lab, tmp_path):
    """A real blow-up: SGD with lr 1e30 and no clipping on a ReLU RNN."""
    out = tmp_path / "div.npz"
    r = run("train", lab["corpus"], *TINY, "--steps", "30", "--eval-every", "1", "--out", out,
            "--cell", "rnn", "--activation", "relu", "--optimizer", "sgd", "--lr", "1e30",
            "--clip", "0")
    assert_last_error(r, 1, "Training diverged", f"saved in {out}", "Lower --lr")
    warnings = [ln for ln in lines(r.stderr) if ln.startswith("Warning:")]
    assert len(warnings) == MAX_DIVERGENCES
    assert all("the step was undone and the learning rate lowered" in w for w in warnings)
    assert "RuntimeWarning" not in r.stderr
    model, meta, arrays = checkpoint.load(out)
    assert all(np.isfinite(v).all() for v in arrays.values() if v.dtype.kind == "f")


# =============================================================== other faults
@pytest.mark.parametrize("exc, code, expected", [
    (KeyboardInterrupt(), 130, "Interrupted."),
    (MemoryError(), 1, "Error: Out of memory. Use a smaller model"),
    (np.linalg.LinAlgError("SVD did not converge"), 1,
     "Error: Unexpected LinAlgError: SVD did not converge. This is a bug in charlm"),
    (RuntimeError("two\nlines"), 1, "Error: Unexpected RuntimeError: two lines."),
    (PermissionError(13, "Permission denied", "/x/y.txt"), 1,
     "Error: Permission denied: /x/y.txt. Check the path"),
])
def test_unexpected_exceptions_are_one_line(lab, monkeypatch, exc, code, expected):
    import charlm.cli.use_cmds

    def boom(*a, **k):
        raise exc
    monkeypatch.setattr(charlm.cli.use_cmds, "score_many", boom)
    r = run("score", "--model", lab["model"], "hello")
    no_traceback(r)
    assert r.exit_code == code
    err = lines(r.stderr)
    assert len(err) == 1 and err[0].startswith(expected), r.stderr
    if code != 130:  # (typer turns an escaped Ctrl-C into its own exit)
        r = run("--debug", "score", "--model", lab["model"], "hello")
        assert type(r.exception) is type(exc)     # --debug: the real exception


def _proc(args, **kw):
    env = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(CHARLM + [str(a) for a in args], capture_output=True, env=env,
                          timeout=60, **kw)


def test_python_m_charlm_prints_the_same_line_as_in_process(lab, tmp_path):
    bad = make_bad_model("truncated", lab["model"], tmp_path, tmp_path / "marker")
    inproc = run("info", "--model", bad)
    p = _proc(["info", "--model", bad])
    assert p.returncode == inproc.exit_code == 1
    assert p.stderr.decode() == inproc.stderr and b"Traceback" not in p.stderr
    p = _proc(["score", "--model", lab["model"], "--top-p", "2"])
    assert p.returncode == 2


def test_real_process_undecodable_argv(lab):
    p = subprocess.run(CHARLM + [b"score", b"--model", str(lab["model"]).encode(), b"caf\xe9"],
                       capture_output=True, timeout=60, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert p.returncode == 1 and b"Traceback" not in p.stderr
    assert lines(p.stderr.decode("utf-8", "replace"))[0].startswith("Error: The sentence")


def test_closed_stdout_pipe_is_quiet(lab):
    """`charlm sample -n 5000 | head -1`: the reader goes away; no error, no traceback (the
    output is larger than a pipe buffer, so the reader really leaves before the writer ends)."""
    proc = subprocess.Popen(CHARLM + ["sample", "--model", str(lab["model"]), "-n", "5000",
                                      "--length", "40"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert b"Traceback" not in err and b"Error" not in err, err
    assert proc.returncode == 141


def test_charlm_error_subclasses_carry_exit_codes():
    from charlm.errors import ConfigError, CorpusError
    assert ConfigError.exit_code == 2
    assert CorpusError.exit_code == ModelFileError.exit_code == TrainingDiverged.exit_code == 1
    assert issubclass(TrainingDiverged, CharlmError)
