"""One run path for every task: what the language model's runs get right, the tagger's and the
classifier's runs get right too (resume limits, the recorded corpus, the API's time limit,
progress in a log), and model files written by charlm 0.1's earlier layout still load and
give the same answers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from test_classify_cli import SMALL as CLASSIFY
from test_classify_cli import toy_tsv
from test_tagging import write_conll
from typer.testing import CliRunner

import charlm
from charlm.cli import app
from charlm.training import checkpoint

LEGACY = Path(__file__).parent / "data" / "legacy"
TAG = ["--task", "tag", "--cell", "gru", "--layers", "1", "--hidden", "8", "--embed", "8",
       "--batch", "8", "--eval-every", "5", "--dropout", "0"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def tagdata(tmp_path):
    return write_conll(tmp_path / "train.conll", 40, 1), write_conll(tmp_path / "dev.conll", 10, 2)


# ------------------------------------------------------------------ resume limits
@pytest.mark.parametrize("task", ["tag", "classify"])
def test_a_resumed_task_run_trains_the_steps_given_now(tmp_path, tagdata, task):
    """--resume --steps N trains N more steps, as for a language model (limits given with
    --resume count from where the run stands), and ends where an uninterrupted run of the
    same total ends: the parameters, the optimizer's state (array for array). (The best
    parameters may differ: the first part also evaluated at its last step.)"""
    if task == "tag":
        opts = [tagdata[0], "--valid", tagdata[1], *TAG]
    else:
        opts = [toy_tsv(tmp_path / "d.tsv", n=60), *CLASSIFY]
    r = invoke("train", *opts, "--steps", 12, "--out", tmp_path / "whole.npz")
    assert r.exit_code == 0, r.output
    r = invoke("train", *opts, "--steps", 5, "--out", tmp_path / "part.npz")
    assert r.exit_code == 0, r.output
    # the corpus is recorded in the file: the resume needs no corpus on the command line
    r = invoke("train", "--task", task, "--resume", "--steps", 7, "--out", tmp_path / "part.npz")
    assert r.exit_code == 0, r.output
    assert "Nothing to train" not in r.output
    _, meta, _ = checkpoint.load(tmp_path / "part.npz")
    assert meta["run"]["step"] == 12
    a = np.load(tmp_path / "whole.npz")
    b = np.load(tmp_path / "part.npz")
    trained = [k for k in a.files if k.startswith("train/")]
    assert trained and sorted(trained) == sorted(k for k in b.files if k.startswith("train/"))
    for k in trained:
        assert np.array_equal(a[k], b[k]), k


@pytest.mark.parametrize("task", ["tag", "classify"])
def test_task_files_record_their_corpus(tmp_path, tagdata, task):
    """A tagger's or classifier's file records its corpus (path, size, SHA-256), as a
    language model's does; a changed file is refused on --resume instead of read silently."""
    if task == "tag":
        data, opts = tagdata[0], [tagdata[0], "--valid", tagdata[1], *TAG]
    else:
        data = toy_tsv(tmp_path / "d.tsv", n=60)
        opts = [data, *CLASSIFY]
    r = invoke("train", *opts, "--steps", 3, "--out", tmp_path / "m.npz")
    assert r.exit_code == 0, r.output
    _, meta, _ = checkpoint.load(tmp_path / "m.npz")
    files = meta["corpus"]["files"]
    assert [f["path"] for f in files] == [str(Path(data).resolve())]
    assert files[0]["bytes"] == Path(data).stat().st_size
    with open(data, "a", encoding="utf-8") as f:
        f.write("\n")
    r = invoke("train", "--task", task, "--resume", "--steps", 1, "--out", tmp_path / "m.npz")
    assert r.exit_code == 1 and "has changed" in r.output


def test_the_api_takes_a_time_limit_for_every_task(tmp_path, tagdata):
    """charlm.train(task=..., time="...") is the command's --time for every task."""
    tagger = charlm.train(tagdata[0], out=tmp_path / "t.npz", valid=tagdata[1], task="tag",
                          time="2s", cell="gru", layers=1, hidden=8, embed=8, batch=8,
                          eval_every=5)
    _, meta, _ = checkpoint.load(tmp_path / "t.npz")
    assert meta["config"]["time_budget"] == 2.0 and meta["run"]["elapsed"] >= 2.0
    assert tagger.tag("Harry met Sally").labels
    clf = charlm.train(toy_tsv(tmp_path / "d.tsv"), out=tmp_path / "c.npz", task="classify",
                       time="1s", level="word", hidden=8, embed=8, layers=1, eval_every=5)
    _, meta, _ = checkpoint.load(tmp_path / "c.npz")
    assert meta["config"]["time_budget"] == 1.0 and clf.classify("fine a b").label


def test_a_classifier_writing_to_a_log_shows_progress_between_evaluations(tmp_path,
                                                                          monkeypatch):
    """Without a terminal, a classifier's run prints a status line now and then between its
    evaluations (every step here, the interval set to 0), as the other tasks' runs do."""
    from charlm.cli import common
    monkeypatch.setattr(common, "PLAIN_PROGRESS_SECONDS", 0.0)
    r = invoke("train", toy_tsv(tmp_path / "d.tsv", n=60), *CLASSIFY, "--eval-every", 100,
               "--steps", 6, "--out", tmp_path / "c.npz")
    assert r.exit_code == 0, r.output
    status = [line for line in r.stderr.splitlines()
              if re.match(r"^step \d+  epoch [\d.]+  loss [\d.]+ nats  [\d,]+ ex/s", line)]
    assert len(status) >= 6, r.stderr


def test_cross_validation_draws_every_fold_and_the_final_model_from_init_scale(tmp_path):
    """--folds with --init-scale S starts each fold's model and the final one as a single run
    does: every parameter drawn again from U(-S, S) with the run's seed (the draw repeated
    here with NumPy), not the cells' initialisation."""
    from charlm.training.folds import cross_validate_run
    seen = []

    def first_params(trainer):
        seen.append({k: v.copy() for k, v in trainer.model.params.items()})
    cross_validate_run(toy_tsv(tmp_path / "d.tsv", n=40), folds=2, task="classify",
                       level="word", cell="gru", layers=1, hidden=8, embed=8, batch=8,
                       steps=1, seed=7, init_scale=0.05, out=tmp_path / "c.npz",
                       on_trainer=first_params)
    assert len(seen) == 3                      # two folds and the final model
    for params in seen:
        rng = np.random.default_rng([7, 3])
        for k, v in params.items():
            expected = rng.uniform(-0.05, 0.05, v.shape).astype(v.dtype)
            np.testing.assert_array_equal(v, expected, err_msg=k)


# ------------------------------------------------------------- files of before
def test_model_files_of_the_earlier_layout_load_and_answer_the_same():
    """Files written by charlm before its modules moved into layer folders (one of each task,
    kept in tests/data/legacy with what that code answered) load and answer the same."""
    want = json.loads((LEGACY / "expected.json").read_text(encoding="utf-8"))
    lm = charlm.load_model(LEGACY / "lm_char.npz")
    assert [lm.score(s).log_prob for s in ["the apple and pear salad", "KING RICHARD:"]] == \
        pytest.approx(want["lm_char"]["score"], rel=1e-9)
    assert lm.sample(seed=3, length=40) == want["lm_char"]["sample"]
    lw = charlm.load_model(LEGACY / "lm_word.npz")
    assert [lw.score(s).log_prob for s in ["the king is dead", "What say you?"]] == \
        pytest.approx(want["lm_word"]["score"], rel=1e-9)
    assert lw.sample(seed=3, length=10) == want["lm_word"]["sample"]
    t = charlm.load_model(LEGACY / "tag.npz").tag("Harry Potter met Hermione in London")
    assert list(t.labels) == want["tag"]["labels"]
    assert np.asarray(t.probs, float).ravel() == pytest.approx(want["tag"]["probs"], rel=1e-6)
    p = charlm.load_model(LEGACY / "classify.npz").classify(
        "The food was great and the staff friendly.")
    assert p.label == want["classify"]["label"]
    assert p.probabilities == pytest.approx(want["classify"]["probabilities"], rel=1e-9)
