"""Interrupting and resuming a run, and not losing model files.

An interrupted-and-resumed run must end with exactly the parameters (and optimizer state, and
carried hidden state) of an uninterrupted run of the same total length: checked through the
library (a Trainer stopped by ``should_stop``, then a fresh Trainer restored from the file) and
through the real command line in a subprocess stopped by SIGINT.
"""

from __future__ import annotations

import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from charlm.cli import app
from charlm.nn.model import Model, ModelConfig
from charlm.tasks.lm import LMTask
from charlm.tasks.stream import prepare_corpus
from charlm.training import checkpoint
from charlm.training.trainer import TrainConfig, Trainer, log_path

CHARLM = str(Path(sys.executable).with_name("charlm"))
WORDS = ["apple", "pear", "salad", "lemon", "the", "and", "with"]


def corpus_text(n: int, seed: int) -> str:
    r = random.Random(seed)
    return "".join(" ".join(r.choice(WORDS) for _ in range(r.randint(2, 6))) + "\n"
                   for _ in range(n))


def file_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "meta"}


def assert_same_arrays(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


# ---------------------------------------------------------------- the library
def new_trainer(text, out, mopts, topts, should_stop=None):
    cfg = TrainConfig(**topts)
    corpus = prepare_corpus([text], cfg)
    model = Model.create(ModelConfig(**mopts), corpus.vocab, np.random.default_rng(cfg.seed))
    return Trainer(model, LMTask(corpus, cfg, model), cfg, out, should_stop=should_stop)


def resumed_trainer(text, out, steps):
    """What `charlm train --resume` does in a new process: everything from the file."""
    model, meta, arrays = checkpoint.load(out)
    cfg = TrainConfig.from_json(meta["config"])
    cfg.steps = steps
    tr = Trainer(model, LMTask(prepare_corpus([text], cfg), cfg, model), cfg, out)
    tr.restore(meta, arrays)
    return tr


@pytest.mark.parametrize("mopts,topts,k", [
    # dropout (the generator's state), Adam's moments, state carried across windows
    (dict(cell="lstm", layers=2, hidden=8, embed=4, dropout=0.3),
     dict(optimizer="adam", lr=0.01), 7),
    # stopped on an evaluation step; plateau schedule lowering the rate
    (dict(cell="gru", layers=1, hidden=8, embed=0, dropout=0.1),
     dict(optimizer="adagrad", lr=0.05, schedule="plateau"), 8),
    # stopped on an epoch boundary; momentum; per-epoch decay
    (dict(cell="rnn", layers=1, hidden=8, embed=4, dropout=0.0, activation="relu"),
     dict(optimizer="sgd", lr=0.3, momentum=0.9, schedule="decay"), "epoch"),
    # tied embedding (W_y = E, stored once) with Adam's moments of its summed gradient
    (dict(cell="lstm", layers=2, hidden=8, embed=8, dropout=0.3, tie_weights=True),
     dict(optimizer="adam", lr=0.01), 7),
])
def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, mopts, topts, k):
    text = corpus_text(50, 1)
    N = 30
    topts = dict(topts, batch=4, bptt=16, steps=N, eval_every=4, eval_batch=2, seed=3)
    ref = new_trainer(text, tmp_path / "ref.npz", mopts, topts)
    assert ref.run_loop() == "steps"
    windows = len(ref.batches)
    assert windows < N          # the runs cross epoch boundaries (state reset, lr decay)
    if k == "epoch":
        k = windows

    out = tmp_path / "int.npz"
    first = new_trainer(text, out, mopts, topts, should_stop=lambda: first.run.step >= k)
    assert first.run_loop() == "interrupted"
    _, meta, _ = checkpoint.load(out)
    assert meta["run"]["step"] == k and meta["run"]["finished"] is False
    interrupted = file_arrays(out)

    second = resumed_trainer(text, out, N)
    assert second.run_loop() == "steps"
    a, b = file_arrays(tmp_path / "ref.npz"), file_arrays(out)
    assert_same_arrays(a, b)
    # the interrupted file held other parameters: the comparison above can fail
    assert not np.array_equal(interrupted["train/param/b_y"], a["train/param/b_y"])
    _, ma, _ = checkpoint.load(tmp_path / "ref.npz")
    _, mb, _ = checkpoint.load(out)
    for key in ("step", "epoch", "window", "tokens_seen", "lr", "best_valid", "best_step"):
        assert ma["run"][key] == mb["run"][key], key
    # the evaluation records agree but for timings and the mean training loss since the last
    # evaluation (the losses of the steps before an interruption are not saved)
    timing = ("eval_seconds", "train_loss")
    ha, hb = ([{k: v for k, v in r.items() if k not in timing} for r in m["run"]["history"]]
              for m in (ma, mb))
    assert ha == hb
    # and the log holds one line per evaluation of the whole run, as the uninterrupted one's
    assert len(log_path(out).read_text().splitlines()) == len(ma["run"]["history"])


def test_resuming_a_finished_run_and_interrupting_it_is_not_finished(tmp_path):
    text = corpus_text(30, 2)
    out = tmp_path / "m.npz"
    mopts = dict(cell="gru", layers=1, hidden=8, embed=4, dropout=0.0)
    topts = dict(batch=4, bptt=8, steps=5, eval_every=0, eval_batch=2)
    new_trainer(text, out, mopts, topts).run_loop()
    assert checkpoint.load(out)[1]["run"]["finished"] is True
    tr = resumed_trainer(text, out, 50)
    tr.should_stop = lambda: tr.run.step >= 8
    assert tr.run_loop() == "interrupted"
    run = checkpoint.load(out)[1]["run"]
    assert run["step"] == 8 and run["finished"] is False


# ----------------------------------------------------- the real command line
SMALL_ARGS = ["--cell", "lstm", "--layers", "1", "--hidden", "32", "--embed", "8",
              "--dropout", "0.1", "--batch", "8", "--bptt", "16", "--eval-every", "5",
              "--eval-batch", "4", "--seed", "11"]
N_STEPS = 100


@pytest.fixture
def corpus_file(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text(corpus_text(200, 3), encoding="utf-8")
    return f


def start_and_signal(args, out: Path, signum, cwd) -> subprocess.CompletedProcess:
    """Start `charlm train`, wait until the model file first appears (the first evaluation
    has been saved, so the handlers are installed and training is under way), then signal."""
    env = dict(os.environ, COLUMNS="120")
    p = subprocess.Popen([CHARLM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=cwd, env=env)
    deadline = time.monotonic() + 30
    while not out.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    p.send_signal(signum)
    stdout, stderr = p.communicate(timeout=60)
    return subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)


def test_cli_ctrl_c_saves_and_resume_matches_uninterrupted_run(tmp_path, corpus_file):
    ref = tmp_path / "ref.npz"
    res = CliRunner().invoke(app, ["train", str(corpus_file), *SMALL_ARGS, "--steps",
                                   str(N_STEPS), "--out", str(ref)])
    assert res.exit_code == 0, res.stderr

    out = tmp_path / "int.npz"
    args = ["train", str(corpus_file), *SMALL_ARGS, "--steps", str(N_STEPS), "--out", str(out)]
    p = start_and_signal(args, out, signal.SIGINT, tmp_path)
    assert p.returncode == 130, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    resume_lines = [line for line in p.stderr.splitlines() if "--resume" in line]
    assert resume_lines and str(out) in resume_lines[-1]
    _, meta, _ = checkpoint.load(out)
    k = meta["run"]["step"]
    assert 5 <= k < N_STEPS and meta["run"]["finished"] is False

    # the command the message prints, as printed: the corpus and limits come from the file
    command = shlex.split(resume_lines[-1].split("Continue it with: ", 1)[1])
    assert command[:2] == ["charlm", "train"] and str(corpus_file) not in command
    p = subprocess.run([CHARLM, *command[1:]], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    _, meta, _ = checkpoint.load(out)
    assert meta["run"]["step"] == N_STEPS and meta["run"]["finished"] is True
    assert_same_arrays(file_arrays(ref), file_arrays(out))


def test_cli_sigterm_saves_a_resumable_run_and_exits_143(tmp_path, corpus_file):
    out = tmp_path / "m.npz"
    args = ["train", str(corpus_file), *SMALL_ARGS, "--steps", "100000", "--out", str(out)]
    p = start_and_signal(args, out, signal.SIGTERM, tmp_path)
    assert p.returncode == 143, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert any("--resume" in line for line in p.stderr.splitlines())
    _, meta, arrays = checkpoint.load(out)
    k = meta["run"]["step"]
    assert 5 <= k < 100000 and meta["run"]["finished"] is False
    assert any(key.startswith("train/optim/") for key in arrays)
    # it resumes: two more steps from where it stopped
    res = CliRunner().invoke(app, args[:-4] + ["--steps", "2", "--out", str(out),
                                               "--resume"])
    assert res.exit_code == 0, res.stderr
    assert checkpoint.load(out)[1]["run"]["step"] == k + 2


def test_cli_in_process_leaves_the_signal_handlers_as_they_were(tmp_path, corpus_file):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    res = CliRunner().invoke(app, ["train", str(corpus_file), *SMALL_ARGS, "--steps", "2",
                                   "--out", str(tmp_path / "m.npz")])
    assert res.exit_code == 0, res.stderr
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# ------------------------------------------------------------ files not lost
def test_existing_model_is_not_overwritten_without_resume_or_force(tmp_path, corpus_file):
    runner = CliRunner()
    out = tmp_path / "m.npz"
    base = ["train", str(corpus_file), *SMALL_ARGS, "--out", str(out)]
    assert runner.invoke(app, base + ["--steps", "3"]).exit_code == 0
    before, log_before = out.read_bytes(), log_path(out).read_bytes()
    res = runner.invoke(app, base + ["--steps", "3", "--seed", "12"])
    assert res.exit_code == 1
    assert "Error:" in res.stderr and "--resume" in res.stderr and "--force" in res.stderr
    assert res.stdout == ""
    assert out.read_bytes() == before
    assert log_path(out).read_bytes() == log_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "m.log.jsonl",
                                                          "m.npz"]


def test_force_keeps_the_old_model_and_log_as_bak(tmp_path, corpus_file):
    runner = CliRunner()
    out = tmp_path / "m.npz"
    base = ["train", str(corpus_file), *SMALL_ARGS, "--out", str(out)]
    assert runner.invoke(app, base + ["--steps", "12"]).exit_code == 0
    old, old_log = out.read_bytes(), log_path(out).read_bytes()
    res = runner.invoke(app, base + ["--steps", "3", "--seed", "12", "--force"])
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "m.npz.bak").read_bytes() == old
    assert (tmp_path / "m.log.jsonl.bak").read_bytes() == old_log
    _, meta, _ = checkpoint.load(out)
    assert meta["run"]["step"] == 3 and meta["config"]["seed"] == 12
    # the new log is the new run's alone: one line, its final evaluation
    steps = [int(line.split('"step": ')[1].split(",")[0])
             for line in log_path(out).read_text().splitlines()]
    assert steps == [h["step"] for h in meta["run"]["history"]] == [3]
