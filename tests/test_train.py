"""Training runs: learning, determinism, limits, the kept model, the log, the vocabulary and the
hidden-state reset at epoch starts.

Every run is tiny (one layer, a few dozen hidden units, tens of steps on a few kB of text), and
every check compares the trainer's result with something computed another way: the corpus read
by hand, a second run, a hand-written training loop, or the model stepped token by token.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import charlm
from charlm.cli import app
from charlm.nn.model import Model, ModelConfig
from charlm.nn.optim import clip_gradients, make_optimizer
from charlm.tasks.lm import LMTask
from charlm.tasks.stream import Batches, prepare_corpus
from charlm.text.vocab import UNK_ID
from charlm.training import checkpoint
from charlm.training.trainer import TrainConfig, Trainer, log_path, parse_duration

WORDS = ["apple", "pear", "salad", "lemon", "the", "and"]

# A small model that trains in well under a second.
SMALL = dict(cell="gru", layers=1, hidden=16, embed=8, dropout=0.0, batch=4, bptt=16,
             eval_batch=2)


def word_lines(n: int, seed: int, words=WORDS) -> str:
    r = random.Random(seed)
    return "".join(" ".join(r.choice(words) for _ in range(r.randint(2, 5))) + "\n"
                   for _ in range(n))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def file_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of a model file except the meta entry."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "meta"}


def hand_windows(n_tokens: int, batch: int, bptt: int) -> list[int]:
    """Targets per window of one epoch, worked out from the stream length alone: the stream is
    cut into ``batch`` rows of ``n_tokens // batch`` targets, read ``bptt`` at a time."""
    n = n_tokens // batch
    sizes = []
    a = 0
    while a < n:
        sizes.append(batch * min(bptt, n - a))
        a += bptt
    return sizes


# ----------------------------------------------------------------- learning
def test_training_lowers_validation_loss_well_below_ln_v(tmp_path):
    tr = write(tmp_path / "train.txt", word_lines(150, 1))
    va = write(tmp_path / "valid.txt", word_lines(20, 2))
    text = tr.read_text()
    lm = charlm.train([tr], out=tmp_path / "m.npz", valid=va, cell="gru", layers=1, hidden=32,
                      embed=16, dropout=0.0, batch=8, bptt=32, steps=60, eval_every=20,
                      lr=0.02, eval_batch=4)
    # the vocabulary is every character of the training text plus <EOS> and <UNK>
    V = len(set(text) - {"\n"}) + 2
    assert len(lm.vocab) == V
    # the entropy of the training text's character frequencies: what a model without context
    # could reach at best
    counts = Counter(text)
    n = sum(counts.values())
    unigram = -sum(c / n * math.log(c / n) for c in counts.values())
    best = lm.train_meta["run"]["best_valid"]
    assert best < 0.5 * math.log(V)
    assert best < 0.5 * unigram


# -------------------------------------------------------------- determinism
def test_same_seed_gives_the_same_model_bit_for_bit(tmp_path):
    tr = write(tmp_path / "c.txt", word_lines(80, 3))
    opts = dict(SMALL, cell="lstm", dropout=0.3, steps=12, eval_every=5)
    charlm.train([tr], out=tmp_path / "a.npz", seed=7, **opts)
    charlm.train([tr], out=tmp_path / "b.npz", seed=7, **opts)
    charlm.train([tr], out=tmp_path / "c.npz", seed=8, **opts)
    a, b, c = (file_arrays(tmp_path / f"{x}.npz") for x in "abc")
    assert a.keys() == b.keys()
    assert any(k.startswith("train/optim/") for k in a)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    # another seed gives another model, so the comparison above can fail
    assert not np.array_equal(a["param/W_y"], c["param/W_y"])


def test_same_seed_same_model_through_the_cli(tmp_path):
    tr = write(tmp_path / "c.txt", word_lines(80, 4))
    args = ["train", str(tr), "--cell", "rnn", "--layers", "1", "--hidden", "12", "--embed",
            "0", "--dropout", "0.2", "--batch", "4", "--bptt", "8", "--steps", "9",
            "--eval-every", "4", "--eval-batch", "2", "--seed", "5"]
    runner = CliRunner()
    for name in ("a", "b"):
        res = runner.invoke(app, args + ["--out", str(tmp_path / f"{name}.npz")])
        assert res.exit_code == 0, res.stderr
    a, b = file_arrays(tmp_path / "a.npz"), file_arrays(tmp_path / "b.npz")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


# ----------------------------------------------------------------- clipping
@pytest.mark.parametrize("opts, expected", [
    (dict(), 5.0 * SMALL["bptt"]),                 # Adam: 5 per step of the window
    (dict(bptt=8), 5.0 * 8),
    (dict(optimizer="sgd", lr=0.5), 5.0),          # the SGD recipes' 5 on the summed loss
    (dict(optimizer="adagrad", lr=0.05), 5.0),
    (dict(clip=3.0), 3.0),                         # given: as given
    (dict(clip=0.0), 0.0),
])
def test_default_clip_threshold(tmp_path, monkeypatch, opts, expected):
    """The threshold every step is clipped at, and the one the model file records."""
    seen = []

    def recording(grads, max_value, mode="norm"):
        seen.append(max_value)
        return clip_gradients(grads, max_value, mode)
    monkeypatch.setattr("charlm.training.trainer.clip_gradients", recording)
    tr = write(tmp_path / "c.txt", word_lines(40, 21))
    lm = charlm.train([tr], out=tmp_path / "m.npz", steps=3, eval_every=0,
                      **{**SMALL, **opts})
    assert seen == [expected] * 3
    assert lm.train_meta["config"]["clip"] == expected


def test_default_clip_per_task_and_old_files():
    cfg = TrainConfig(bptt=35)
    assert cfg.clip is None
    assert cfg.default_clip("lm") == 175.0
    assert cfg.default_clip("tag") == cfg.default_clip("classify") == 5.0
    # a model file written before: its recorded clip stays what it was
    assert TrainConfig.from_json({"clip": 5.0, "bptt": 128, "optimizer": "adam"}).clip == 5.0


# ------------------------------------------------------------------- limits
def test_steps_limit(tmp_path):
    text = word_lines(60, 5)
    tr, va = write(tmp_path / "t.txt", text), write(tmp_path / "v.txt", word_lines(8, 6))
    lm = charlm.train([tr], out=tmp_path / "m.npz", valid=va, steps=7, eval_every=0, **SMALL)
    run = lm.train_meta["run"]
    sizes = hand_windows(len(text), SMALL["batch"], SMALL["bptt"])   # char level: 1 char = 1 id
    assert len(sizes) > 7                                             # stops inside epoch 0
    assert run["step"] == 7
    assert run["epoch"] == 0
    assert run["tokens_seen"] == sum(sizes[:7])
    assert run["finished"] is True


def test_epochs_limit(tmp_path):
    text = word_lines(30, 7)
    tr, va = write(tmp_path / "t.txt", text), write(tmp_path / "v.txt", word_lines(8, 8))
    lm = charlm.train([tr], out=tmp_path / "m.npz", valid=va, epochs=2, eval_every=0, **SMALL)
    run = lm.train_meta["run"]
    sizes = hand_windows(len(text), SMALL["batch"], SMALL["bptt"])
    assert len(sizes) >= 2
    assert run["step"] == 2 * len(sizes)
    assert run["epoch"] == 2
    assert run["window"] == 0
    assert run["tokens_seen"] == 2 * (len(text) // SMALL["batch"]) * SMALL["batch"]


@pytest.mark.parametrize("limit", [["--epochs", "2"], ["--steps", "5"]])
def test_limits_through_the_cli_and_info(tmp_path, limit):
    text = word_lines(30, 19)
    tr, va = write(tmp_path / "t.txt", text), write(tmp_path / "v.txt", word_lines(8, 20))
    out = tmp_path / "m.npz"
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(tr), "--valid", str(va), "--cell", "gru",
                              "--layers", "1", "--hidden", "16", "--embed", "8", "--batch", "4",
                              "--bptt", "16", "--eval-batch", "2", "--out", str(out), *limit])
    assert res.exit_code == 0, res.stderr
    info = runner.invoke(app, ["info", "--model", str(out), "--json"])
    assert info.exit_code == 0, info.stderr
    r = json.loads(info.stdout)
    sizes = hand_windows(len(text), 4, 16)
    steps = 2 * len(sizes) if limit[0] == "--epochs" else 5
    assert r["steps"] == steps
    assert r["epochs"] == steps // len(sizes)
    assert r["tokens_seen"] == sum(sizes[i % len(sizes)] for i in range(steps))
    assert f"stopped by the {limit[0][2:]} limit" in res.stdout


def test_whichever_limit_comes_first(tmp_path):
    text = word_lines(30, 9)
    tr, va = write(tmp_path / "t.txt", text), write(tmp_path / "v.txt", word_lines(8, 8))
    w = len(hand_windows(len(text), SMALL["batch"], SMALL["bptt"]))
    lm = charlm.train([tr], out=tmp_path / "a.npz", valid=va, epochs=1, steps=w + 5,
                      eval_every=0, **SMALL)
    assert lm.train_meta["run"]["step"] == w
    lm = charlm.train([tr], out=tmp_path / "b.npz", valid=va, epochs=3, steps=w - 1,
                      eval_every=0, **SMALL)
    assert lm.train_meta["run"]["step"] == w - 1


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("10m", 600),
                                          ("1h30m", 5400), ("1.5h", 5400), ("2m 30s", 150)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_time_limit_stops_by_time(tmp_path):
    tr = write(tmp_path / "c.txt", word_lines(200, 10))
    budget, margin = 2.0, 3.0   # generous: a loaded machine may finish a step and an eval late
    out = tmp_path / "m.npz"
    args = ["train", str(tr), "--cell", "lstm", "--layers", "1", "--hidden", "32", "--embed",
            "8", "--batch", "8", "--bptt", "16", "--eval-every", "100", "--eval-batch", "4",
            "--time", "2s", "--steps", "1000000", "--out", str(out)]
    t0 = time.perf_counter()
    res = CliRunner().invoke(app, args)
    wall = time.perf_counter() - t0
    assert res.exit_code == 0, res.stderr
    assert "stopped by the time limit" in res.stdout
    _, meta, _ = checkpoint.load(out)
    run = meta["run"]
    assert 0 < run["step"] < 1_000_000
    assert budget <= run["elapsed"] < budget + margin
    assert wall < budget + margin + 2.0   # start-up and the final save on top


# --------------------------------------------------- the best model is kept
def _rising_setup(tmp_path):
    """A run whose validation loss falls, then rises: the training lines repeat 'abcabcabd',
    the validation lines 'abdabdabc', and a high learning rate overfits the first."""
    tr = write(tmp_path / "t.txt", "abcabcabd\n" * 40)
    va = write(tmp_path / "v.txt", "abdabdabc\n" * 10)
    opts = dict(cell="gru", layers=1, hidden=16, embed=8, dropout=0.0, batch=4, bptt=16,
                eval_every=1, lr=0.05, eval_batch=1, dtype="float64")
    return tr, va, opts


def test_best_model_on_validation_is_kept(tmp_path):
    tr, va, opts = _rising_setup(tmp_path)
    N = 30
    charlm.train([tr], out=tmp_path / "long.npz", valid=va, steps=N, **opts)
    model, meta, arrays = checkpoint.load(tmp_path / "long.npz")
    run = meta["run"]
    hist = run["history"]
    assert [h["step"] for h in hist] == list(range(1, N + 1))
    losses = [h["valid_loss"] for h in hist]
    b = int(np.argmin(losses))
    assert run["best_step"] == hist[b]["step"]
    assert run["best_valid"] == losses[b]
    assert 1 < run["best_step"] < N and losses[-1] > losses[b] + 0.5   # it did rise
    # the "best" flags mark exactly the new minima
    assert [h["best"] for h in hist] == [i == 0 or losses[i] < min(losses[:i])
                                         for i in range(N)]
    # the saved parameters are those of a run stopped at the best step (a second run), not
    # the latest ones
    charlm.train([tr], out=tmp_path / "short.npz", valid=va, steps=run["best_step"], **opts)
    short = file_arrays(tmp_path / "short.npz")
    for k, v in model.params.items():
        assert np.array_equal(v, short[f"train/param/{k}"]), k
    assert not np.array_equal(model.params["W_y"], arrays["train/param/W_y"])
    # and loading them reproduces the best validation loss, computed token by token
    lm = charlm.load_model(tmp_path / "long.npz")
    assert stepped_mean_nll(lm.model, va.read_text()) == pytest.approx(run["best_valid"],
                                                                       rel=1e-10)


def stepped_mean_nll(model: Model, text: str) -> float:
    """Mean NLL per token of ``text`` read as one stream from a<0> = 0 and the <EOS> input,
    with Model.step one token at a time; ids looked up by hand in the token list."""
    index = {t: i for i, t in enumerate(model.vocab.tokens)}
    ids = [0 if ch == "\n" else index.get(ch, UNK_ID) for ch in text]
    state = model.zero_state(1)
    x, total = 0, 0.0
    for y in ids:
        logits, state = model.step(np.array([x]), state)
        z = logits[0].astype(np.float64)
        total += math.log(np.exp(z - z.max()).sum()) + z.max() - z[y]
        x = y
    return total / len(ids)


# ---------------------------------------------------------------------- log
@pytest.mark.parametrize("steps,every,expected", [(23, 5, [5, 10, 15, 20, 23]),
                                                  (20, 5, [5, 10, 15, 20]),
                                                  (6, 0, [6])])
def test_log_has_one_line_per_evaluation(tmp_path, steps, every, expected):
    tr, va = write(tmp_path / "t.txt", word_lines(60, 11)), write(tmp_path / "v.txt",
                                                                  word_lines(6, 12))
    out = tmp_path / "models" / "mine.npz"
    charlm.train([tr], out=out, valid=va, steps=steps, eval_every=every, **SMALL)
    log = tmp_path / "models" / "mine.log.jsonl"
    assert log_path(out) == log
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == expected
    _, meta, _ = checkpoint.load(out)
    assert records == meta["run"]["history"]
    for r in records:
        assert {"step", "epoch", "tokens", "lr", "valid_loss", "train_loss"} <= r.keys()


def test_a_new_run_starts_a_new_log_and_a_resumed_run_continues_it(tmp_path):
    tr, va = write(tmp_path / "t.txt", word_lines(60, 17)), write(tmp_path / "v.txt",
                                                                  word_lines(6, 18))
    out = tmp_path / "m.npz"
    charlm.train([tr], out=out, valid=va, steps=10, eval_every=5, **SMALL)
    charlm.train([tr], out=out, valid=va, steps=6, eval_every=4, force=True,
                 **SMALL)   # a new run
    steps = [json.loads(line)["step"] for line in log_path(out).read_text().splitlines()]
    assert steps == [4, 6]
    model, meta, arrays = checkpoint.load(out)
    cfg = TrainConfig.from_json(meta["config"])
    cfg.steps = 9
    corpus = prepare_corpus([tr.read_text()], cfg, va.read_text())
    trainer = Trainer(model, LMTask(corpus, cfg, model), cfg, out)
    trainer.restore(meta, arrays)
    trainer.run_loop()
    steps = [json.loads(line)["step"] for line in log_path(out).read_text().splitlines()]
    assert steps == [4, 6, 8, 9]
    assert steps == [h["step"] for h in checkpoint.load(out)[1]["run"]["history"]]


# --------------------------------------------------------------- vocabulary
def test_vocabulary_from_training_text_only_with_valid_file(tmp_path):
    train_text = word_lines(40, 13)
    valid_text = "the Zebra and the pear\nZZ apple\n"
    tr, va = write(tmp_path / "t.txt", train_text), write(tmp_path / "v.txt", valid_text)
    out = tmp_path / "m.npz"
    charlm.train([tr], out=out, valid=va, steps=3, eval_every=0, dtype="float64",
                 **dict(SMALL, eval_batch=1))
    model, meta, arrays = checkpoint.load(out)
    assert set(model.vocab.tokens[2:]) == set(train_text) - {"\n"}
    assert "Z" not in model.vocab.tokens and "b" not in model.vocab.tokens
    # the recorded validation loss is that of the latest parameters over the validation text
    # with Z and b read as <UNK>, worked out one token at a time
    latest = Model(model.config, model.vocab,
                   {k: arrays[f"train/param/{k}"] for k in model.params})
    rec = meta["run"]["history"][-1]
    assert rec["valid_tokens"] == len(valid_text)
    assert rec["valid_loss"] == pytest.approx(stepped_mean_nll(latest, valid_text), rel=1e-10)


def test_vocabulary_from_training_part_with_valid_fraction(tmp_path):
    body = word_lines(60, 14)
    tail = "Quince quince\n" * 4          # only in the last lines: the validation part
    text = body + tail
    fraction = len(tail) / len(text) + 0.01
    cfg = TrainConfig(valid_fraction=fraction, batch=4, eval_batch=2)
    corpus = prepare_corpus([text], cfg)
    # by hand: the validation part is the whole lines after the point 1 - fraction of the way
    lines = text.splitlines(keepends=True)
    ends = np.cumsum([len(line) for line in lines])
    first_valid = int(np.argmax(ends > int(len(text) * (1 - fraction))))
    train_part = "".join(lines[: first_valid + 1])
    valid_part = "".join(lines[first_valid + 1:])
    assert valid_part.endswith(tail) and "Q" not in train_part
    assert set(corpus.vocab.tokens[2:]) == set(train_part) - {"\n"}
    assert "Q" not in corpus.vocab.tokens
    # the validation ids are those of the validation part, with Q read as <UNK>
    index = {t: i for i, t in enumerate(corpus.vocab.tokens)}
    expected = [0 if ch == "\n" else index.get(ch, UNK_ID) for ch in valid_part]
    assert corpus.valid_ids.tolist() == expected
    assert expected.count(UNK_ID) >= 4
    assert len(corpus.train_ids) == len(train_part)


# ---------------------------------------------- hidden state at epoch start
def _trainer(tmp_path, text, **cfg_opts):
    cfg = TrainConfig(**{k: v for k, v in cfg_opts.items() if k in TrainConfig.__annotations__})
    mcfg = ModelConfig(**{k: v for k, v in cfg_opts.items() if k in ModelConfig.__annotations__})
    corpus = prepare_corpus([text], cfg)
    model = Model.create(mcfg, corpus.vocab, np.random.default_rng(cfg.seed))
    return Trainer(model, LMTask(corpus, cfg, model), cfg, tmp_path / "m.npz")


def test_hidden_state_resets_at_each_epoch_start(tmp_path):
    text = word_lines(24, 15)
    tr = _trainer(tmp_path, text, cell="lstm", layers=2, hidden=8, embed=4, dropout=0.0,
                  batch=4, bptt=8, epochs=3, eval_every=0, valid_fraction=0.0)
    w = len(hand_windows(len(text), 4, 8))
    assert w >= 3
    seen = []
    real_loss = tr.model.loss

    def spy(X, Y, state, rng=None):
        out = real_loss(X, Y, state, rng)
        seen.append(([np.array(a) for s in state for a in (s if isinstance(s, tuple) else [s])],
                     [np.array(a) for s in out[2] for a in (s if isinstance(s, tuple) else [s])]))
        return out

    tr.model.loss = spy
    tr.run_loop()
    assert len(seen) == 3 * w
    for i, (state_in, _) in enumerate(seen):
        if i % w == 0:       # the first window of an epoch starts from a<0> = 0
            assert all(not a.any() for a in state_in), i
        else:                # later windows carry the state the previous window ended with
            assert all(a.any() for a in state_in), i
            for a, b in zip(state_in, seen[i - 1][1]):
                assert np.array_equal(a, b), i


def test_trainer_equals_a_hand_written_tbptt_loop(tmp_path):
    """Two epochs by the trainer == two epochs of forward/backward/clip/update written out
    here, state carried across windows and reset at each epoch start; without the reset the
    result differs, so the comparison sees it."""
    text = word_lines(24, 16)
    opts = dict(cell="rnn", layers=1, hidden=8, embed=0, dropout=0.0, batch=4, bptt=8,
                epochs=2, eval_every=0, valid_fraction=0.0, dtype="float64", lr=0.01,
                clip=1.0)
    tr = _trainer(tmp_path, text, **opts)
    start = {k: v.copy() for k, v in tr.model.params.items()}
    tr.run_loop()

    def by_hand(reset: bool):
        model = Model(tr.model.config, tr.model.vocab, {k: v.copy() for k, v in start.items()})
        opt = make_optimizer("adam", 0.01)
        batches = Batches.from_stream(tr.corpus.train_ids, 4, 8)
        state = model.zero_state(4)
        for epoch in range(2):
            if reset:
                state = model.zero_state(4)
            for k in range(len(batches)):
                X, Y = batches.window(k)
                _, _, state, cache = model.loss(X, Y, state)
                grads, _ = model.backward(cache)
                clip_gradients(grads, 1.0, "norm")
                opt.update(model.params, grads)
        return model.params

    with_reset, without = by_hand(True), by_hand(False)
    for k, v in tr.model.params.items():
        assert np.array_equal(v, with_reset[k]), k
    assert not np.array_equal(tr.model.params["W_y"], without["W_y"])
