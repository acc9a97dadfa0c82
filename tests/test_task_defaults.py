"""Per-task defaults: ``charlm train --task tag|classify FILE`` with no other option uses the
task's DEFAULTS (the language model keeps ModelConfig's and TrainConfig's); an option given
always wins; ``--resume`` keeps the run's own (its saved config), whatever the defaults are now;
``charlm info`` shows what was used."""

from __future__ import annotations

import json
from dataclasses import asdict, fields

import numpy as np
import pytest
from conftest import whole_and_resumed
from test_tagging import write_conll
from typer.testing import CliRunner

from charlm.cli import app
from charlm.nn.model import ModelConfig
from charlm.tasks import classify, lm, tag
from charlm.training import checkpoint
from charlm.training.runs import plan_training
from charlm.training.trainer import TrainConfig

runner = CliRunner()
REVIEWS = ["a fine and moving film\t1", "dull , slow and silly\t0", "a great cast\t1",
           "nothing works here\t0", "warm funny and smart\t1", "tedious and flat\t0"] * 8
MODEL_KEYS = {f.name for f in fields(ModelConfig)}


def write_reviews(path):
    path.write_text("\n".join(REVIEWS) + "\n", encoding="utf-8")
    return path


def used(plan) -> dict:
    """Every option value a planned run uses: its ModelConfig and TrainConfig together."""
    return {**asdict(plan.tcfg), **plan.mcfg.to_json()}


@pytest.mark.parametrize("task", ["tag", "classify"])
def test_a_task_without_options_uses_its_own_defaults(tmp_path, task):
    data = (write_conll(tmp_path / "t.conll", 30, 1) if task == "tag"
            else write_reviews(tmp_path / "r.tsv"))
    plan = plan_training(data, task=task, out=tmp_path / "m.npz", steps=1)
    got, defaults = used(plan), {"tag": tag, "classify": classify}[task].DEFAULTS
    # the task's own differ from the language model's where it matters
    assert defaults["level"] == "word" and defaults["bidirectional"] is True
    assert defaults["hidden"] != ModelConfig().hidden and defaults["lr"] != TrainConfig().lr
    for k, v in defaults.items():
        assert got[k] == v, k
    # the rest: ModelConfig's and TrainConfig's own
    base = {**asdict(TrainConfig()), **ModelConfig().to_json()}
    for k in set(base) - set(defaults) - {"task", "steps", "time_budget", "lm_features"}:
        assert got[k] == base[k], k


def test_a_file_from_before_input_dropout_loads_without_it(tmp_path):
    """A model file whose config has no ``input_dropout`` (written before the option) is read
    as trained: no input dropout, whatever the task's default is now."""
    data = write_reviews(tmp_path / "r.tsv")
    r = runner.invoke(app, ["train", "--task", "classify", str(data), "--steps", "1",
                            "--hidden", "4", "--embed", "3", "--out", str(tmp_path / "m.npz")])
    assert r.exit_code == 0, r.output
    assert checkpoint.load(tmp_path / "m.npz")[0].config.input_dropout == \
        classify.DEFAULTS["input_dropout"] > 0
    with np.load(tmp_path / "m.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["config"]["input_dropout"]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    assert checkpoint.load(tmp_path / "old.npz")[0].config.input_dropout == 0.0


def test_the_language_model_keeps_its_defaults(tmp_path):
    (tmp_path / "c.txt").write_text("some text to read\n" * 40, encoding="utf-8")
    plan = plan_training(tmp_path / "c.txt", out=tmp_path / "m.npz", steps=1)
    assert lm.DEFAULTS == {}
    assert plan.mcfg.to_json() == ModelConfig().to_json()
    assert asdict(plan.tcfg) == {**asdict(TrainConfig()), "steps": 1}


def test_given_options_win_over_the_task_defaults(tmp_path):
    data = write_reviews(tmp_path / "r.tsv")
    plan = plan_training(data, task="classify", out=tmp_path / "m.npz", steps=1, hidden=7,
                         bidirectional=False, lr=0.01, pool="last")
    got = used(plan)
    assert (got["hidden"], got["bidirectional"], got["lr"], got["pool"]) == (7, False, 0.01,
                                                                             "last")
    assert got["embed"] == classify.DEFAULTS["embed"]        # the others stay the task's
    # a tagger's character words are off with either size 0 given
    conll = write_conll(tmp_path / "t.conll", 30, 1)
    for off in ({"char_hidden": 0}, {"char_embed": 0}):
        got = used(plan_training(conll, task="tag", out=tmp_path / "t.npz", steps=1, **off))
        assert (got["char_embed"], got["char_hidden"]) == (0, 0)
    got = used(plan_training(conll, task="tag", out=tmp_path / "t.npz", steps=1,
                             char_hidden=9))
    assert (got["char_embed"], got["char_hidden"]) == (tag.DEFAULTS["char_embed"], 9)


def test_the_command_line_passes_only_what_was_given(tmp_path):
    data = write_reviews(tmp_path / "r.tsv")
    for flags, want in (([], True), (["--no-bidirectional"], False),
                        (["--bidirectional"], True)):
        out = tmp_path / f"m{len(flags)}{want}.npz"
        r = runner.invoke(app, ["train", "--task", "classify", str(data), "--steps", "2",
                                "--hidden", "5", "--embed", "4", *flags, "--out", str(out)])
        assert r.exit_code == 0, r.output
        model, meta, _ = checkpoint.load(out)
        assert model.config.bidirectional is want
        assert (model.config.hidden, model.config.pool) == (5, classify.DEFAULTS["pool"])
        assert meta["config"]["lr"] == classify.DEFAULTS["lr"]
        assert meta["config"]["level"] == "word"


def test_resume_keeps_the_runs_own_options_and_info_shows_them(tmp_path):
    """A run saved with options other than today's defaults (here the language model's, as
    a classifier had them before it had its own) resumes with its own, bit for bit as the
    run trained straight through."""
    data = write_reviews(tmp_path / "r.tsv")
    own = ["--level", "char", "--no-bidirectional", "--hidden", "6", "--embed", "3",
           "--layers", "2", "--lr", "0.002", "--pool", "last", "--eval-every", "3",
           "--dropout", "0.1", "--input-dropout", "0.2", "--batch", "8"]
    common = ["train", "--task", "classify", str(data), *own]
    whole_and_resumed(common, "classify", tmp_path)
    ref, _, a = checkpoint.load(tmp_path / "ref.npz")
    got, meta, b = checkpoint.load(tmp_path / "int.npz")
    assert got.config.to_json() == ref.config.to_json()
    assert (got.vocab.level, got.config.hidden, got.config.bidirectional) == ("char", 6, False)
    assert (got.config.dropout, got.config.input_dropout) == (0.1, 0.2)
    assert meta["config"]["lr"] == 0.002 and meta["config"]["eval_every"] == 3
    for k in ref.params:
        assert np.array_equal(ref.params[k], got.params[k]), k
    for k in a:
        if k.startswith("train/"):
            assert np.array_equal(a[k], b[k]), k
    r = runner.invoke(app, ["info", "--model", str(tmp_path / "int.npz"), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["train_config"]["lr"] == 0.002 and info["config"]["pool"] == "last"
    r = runner.invoke(app, ["info", "--model", str(tmp_path / "int.npz")])
    assert "lr 0.002, batch 8" in r.output and "validation every 3 steps" in r.output
    assert "char-level 2×LSTM 6" in r.output and "dropout 0.1 (input 0.2)" in r.output
