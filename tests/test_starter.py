"""The starter model that ships with charlm: the file itself, its float16 scores against the
float32 model's (stored when the file was made), the commands' fallback to it and its one
stderr line, --init-from starter, and loading it from an installed wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_model
from typer.testing import CliRunner

import charlm
from charlm.cli import app
from charlm.nn.model import ModelConfig
from charlm.text.vocab import Vocab
from charlm.training import checkpoint
from charlm.use import starter
from charlm.use.language_model import LanguageModel

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = json.loads((ROOT / "tests/data/starter_reference.json").read_text(encoding="utf-8"))
# float16 keeps 11 significant bits: a sentence's log P per token stays within TOLERANCE nats of
# the float32 model's (measured: at most 2e-4 on these sentences). Summed over a sentence the
# differences reach about 1e-2 nats (docs/benchmarks.md, "Starter model").
TOLERANCE = 1e-3
PAIR = ["the apple and pair salad", "the apple and pear salad"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------- the file
def test_the_shipped_file_holds_float16_best_parameters_and_no_training_state():
    raw = np.load(starter.path(), allow_pickle=False)
    stored = {k[len("param/"):]: raw[k] for k in raw.files if k.startswith("param/")}
    assert {a.dtype for a in stored.values()} == {np.dtype(np.float16)}
    assert sorted(raw.files) == sorted([f"param/{k}" for k in stored] + ["meta"])
    model, meta, rest = checkpoint.load("starter")     # the model-file checks, by name
    assert rest == {}
    # the recorded config, with defaults for fields added since (they change nothing)
    assert model.config.to_json() == ModelConfig.from_json(REFERENCE["config"]).to_json()
    for k, v in model.params.items():   # float32 again, the same numbers
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, stored[k].astype(np.float32))
    assert sorted(meta) == sorted(starter.KEPT + ("source",))
    assert meta["run"]["finished"] and meta["run"]["best_valid"] > 0
    assert "/" not in meta["corpus"]["files"][0]["path"]   # a file name, not a machine's path
    assert "public domain" in meta["source"]["licence"]
    assert "Project Gutenberg" in meta["source"]["text"]
    assert starter.path().stat().st_size < 5_000_000


def test_float16_scores_match_the_float32_model():
    lm = charlm.load_model("starter")
    assert isinstance(lm, LanguageModel)
    rows = REFERENCE["sentences"]
    got = lm.score_many([r["text"] for r in rows])
    worst = 0.0
    for r, g in zip(rows, got, strict=True):
        assert g.n_tokens == r["n_tokens"]
        diff = abs(g.log_prob - r["log_prob"])
        assert diff / g.n_tokens <= TOLERANCE, (r["text"], diff)
        worst = max(worst, diff)
    assert worst > 0   # float16 did round: the comparison is not of a file with itself


def test_the_name_starter_and_a_file_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert checkpoint.locate("starter") == starter.path()
    assert checkpoint.locate("other") == Path("other")
    assert len(charlm.load_model("starter").vocab) == len(starter.load().vocab) > 60
    own = make_model(V=7)
    checkpoint.save("starter", own)   # a file named starter is the user's: it wins
    assert len(charlm.load_model("starter").vocab) == 7


def test_a_missing_starter_file_says_to_reinstall(monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoint, "starter_path", lambda: tmp_path / "gone.npz")
    with pytest.raises(charlm.ModelFileError, match="missing from this installation"):
        charlm.load_model("starter")


# ------------------------------------------------------------------ the command line
COMMANDS = [["score", *PAIR], ["score", "--json", PAIR[1]],
            ["sample", "--seed", 3, "--length", 40], ["pairs", "--good", "The cats were here.",
                                                      "--bad", "The cats was here."],
            ["eval", "held.txt"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(map(str, c[:2])))
def test_without_a_model_the_commands_use_the_starter_and_say_so_once(tmp_path, monkeypatch,
                                                                      cmd):
    monkeypatch.chdir(tmp_path)
    Path("held.txt").write_text("It is a truth universally acknowledged.\nCall me Ishmael.\n")
    fallback = invoke(*cmd)
    assert fallback.exit_code == 0, fallback.stderr
    lines = fallback.stderr.splitlines()
    assert len(lines) == 1 and "starter model" in lines[0] and "models/char.npz" in lines[0]
    named = invoke(*cmd, "--model", "starter")
    assert named.exit_code == 0 and named.stderr == ""
    assert named.stdout == fallback.stdout != ""
    # the same model as the user's own default file, and given by path: no line either
    model, meta, _ = checkpoint.load("starter")
    checkpoint.save("models/char.npz", model, meta)
    for args in (cmd, [*cmd, "--model", "models/char.npz"]):
        own = invoke(*args)
        assert own.exit_code == 0 and own.stderr == ""
        assert own.stdout.replace(str(Path("models/char.npz")), "") == \
            fallback.stdout.replace(str(starter.path()), "")


def test_word_level_and_info_have_no_fallback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for cmd in (["score", "--level", "word", "pear"], ["info"]):
        res = invoke(*cmd)
        assert res.exit_code == 1 and res.stdout == ""
        assert res.stderr.startswith("Error: No ") and "starter" not in res.stderr


def test_info_of_the_starter_shows_its_source():
    text = invoke("info", "--model", "starter")
    assert text.exit_code == 0 and text.stderr == ""
    assert "public domain in the United States" in " ".join(text.stdout.split())
    as_json = json.loads(invoke("info", "--model", "starter", "--json").stdout)
    assert as_json["source"] == checkpoint.load("starter")[1]["source"]


# ------------------------------------------------------------------------ fine-tuning
def test_init_from_starter_keeps_its_vocabulary_and_counts_unseen_characters(tmp_path,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = "Жук и ёж.\nthe apple and pear salad\n" * 20
    Path("mine.txt").write_text(text, encoding="utf-8")
    Path("valid.txt").write_text("the pear\n", encoding="utf-8")
    vocab: Vocab = starter.load().vocab
    unseen = sum(1 for c in text if c != "\n" and c not in vocab.tokens)
    tokens = len(text)    # each character, and one <EOS> per line in place of its "\n"
    res = invoke("train", "mine.txt", "--valid", "valid.txt", "--init-from", "starter",
                 "--steps", 1, "--batch", 2, "--bptt", 8, "--eval-batch", 1, "--out", "mine.npz")
    assert res.exit_code == 0, res.stderr
    assert f"Warning: {unseen:,} of the {tokens:,} training tokens are outside the " \
           f"vocabulary of {starter.path()}" in " ".join(res.stderr.split())
    tuned, meta, _ = checkpoint.load("mine.npz")
    base, _, _ = checkpoint.load("starter")
    assert tuned.vocab.tokens == base.vocab.tokens and tuned.config == base.config
    assert meta["config"]["init_from"] == str(starter.path())
    assert any(not np.array_equal(tuned.params[k], base.params[k]) for k in base.params)


def test_a_shipped_file_cannot_be_resumed_and_says_why(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(starter.path(), "copy.npz")
    Path("mine.txt").write_text("the pear\n" * 10, encoding="utf-8")
    res = invoke("train", "mine.txt", "--resume", "--out", "copy.npz")
    assert res.exit_code == 1
    assert "without its training state" in res.stderr and "--init-from copy.npz" in res.stderr


# --------------------------------------------------------------------- installed wheel
def test_the_starter_model_loads_from_an_installed_wheel(tmp_path):
    src = tmp_path / "src"   # a copy of what the wheel is built from: the checkout stays clean
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("charlm", "corpora"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", tmp_path / "dist", src], capture_output=True, text=True,
                           timeout=120)
    wheels = list((tmp_path / "dist").glob("charlm-*.whl"))
    if built.returncode or not wheels:
        pytest.skip("no wheel could be built here: " + (built.stderr.strip().splitlines()
                                                        or ["(no output)"])[-1])
    with zipfile.ZipFile(wheels[0]) as z:
        assert z.getinfo("charlm/models/starter.npz").file_size == starter.path().stat().st_size
    assert wheels[0].stat().st_size < 8_000_000   # the corpora and the model, compressed
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", site, wheels[0]],
                   check=True, capture_output=True, timeout=120)
    code = ("import json, charlm; from charlm.use import starter; "
            "lm = charlm.load_model('starter'); "
            "print(json.dumps([charlm.__file__, str(starter.path()), "
            f"lm.score({PAIR[1]!r}).log_prob]))")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(site)})
    assert run.returncode == 0, run.stderr
    package, path, log_prob = json.loads(run.stdout)
    assert Path(package).is_relative_to(site) and Path(path).is_relative_to(site)
    assert log_prob == charlm.load_model("starter").score(PAIR[1]).log_prob
