"""The training loop: corpus text -> trained model file.

Truncated backpropagation through time: the training stream is laid out as ``batch`` rows and
cut into windows of ``bptt`` steps (``data.Batches``); the hidden state at the end of a window
starts the next one (carried, but no gradient flows back through it) and is reset to zero at
the start of every epoch. Each step: forward and loss ``L = Σ_t L<t>`` (averaged over the
batch), backward, clipping, optimizer update.

The trainer never prints: it reports through ``callback(event)`` with plain dicts (``kind`` is
``start``, ``step``, ``eval``, ``sample``, ``warning``, ``saved``), and asks ``should_stop()``
between steps so that an interrupt ends it cleanly with a resumable checkpoint.

Data-parallel training (``mpiexec -n N``) is one hook, ``reducer`` (``charlm.distributed``):
each process trains rows ``self.rows`` of every window, and the reducer sums what the processes
computed — the gradients and loss of each step, the validation sums — so that every decision
below is taken on the same numbers by every process. Without it nothing changes. A task
whose batches are lists of sentences would use it the same way: each process takes a
contiguous slice of the batch's sentences and divides its loss by the whole batch's count
(tokens or examples), which every process can compute from the whole batch.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np

from . import checkpoint
from .data import Batches
from .errors import CharlmError, ConfigError, CorpusError, ModelFileError, TrainingDiverged
from .generate import sample as draw_sample
from .layers import RowShare
from .model import Model
from .optim import OPTIMIZERS, clip_gradients, make_optimizer
from .vocab import Vocab, sequence_chunks

MAX_DIVERGENCES = 5   # consecutive non-finite steps before training gives up


@dataclass
class TrainConfig:
    """Everything about a run that is not the model's shape."""

    level: str = "char"
    prose: bool = False
    lowercase: bool = False
    vocab_size: int = 10000
    min_count: int = 1
    unk_token: str = "<unk>"
    optimizer: str = "adam"
    lr: float = 2e-3
    momentum: float = 0.0
    schedule: str = "constant"      # constant | decay | plateau
    decay: float = 0.5              # factor for decay and plateau
    decay_after: int = 1            # decay: first epoch after which lr is multiplied
    clip: float = 5.0
    clip_mode: str = "norm"
    batch: int = 32
    bptt: int = 128
    seed: int = 1234
    epochs: int = 0                 # 0: no limit
    steps: int = 0                  # 0: no limit
    time_budget: float = 0.0        # seconds; 0: no limit
    valid_fraction: float = 0.1
    eval_every: int = 500
    eval_batch: int = 32
    sample_every: int = 0
    sample_length: int = 0          # 0: 200 characters or 50 words

    def validate(self) -> None:
        for name in ("batch", "bptt", "eval_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1 "
                                  f"(got {getattr(self, name)}).")
        for name in ("lr", "clip", "momentum", "decay"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ConfigError(f"--{name} must be a finite number ≥ 0 (got {v}).")
        if self.lr == 0:
            raise ConfigError("--lr must be positive (got 0).")
        if not 0 < self.decay <= 1:
            raise ConfigError(f"--decay must be in (0, 1]: the factor the learning rate is "
                              f"multiplied by (got {self.decay}).")
        if self.decay_after < 0:
            raise ConfigError(f"--decay-after must be 0 or more (got {self.decay_after}).")
        if self.seed < 0:
            raise ConfigError(f"--seed must be 0 or more (got {self.seed}).")
        if not 0 <= self.valid_fraction < 1:
            raise ConfigError(f"--valid-fraction must be in [0, 1) (got {self.valid_fraction}).")
        for name in ("epochs", "steps", "eval_every", "sample_every", "time_budget"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must not be negative.")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"Unknown optimizer {self.optimizer!r}. "
                              f"Use one of: {', '.join(OPTIMIZERS)}.")
        if self.schedule not in ("constant", "decay", "plateau"):
            raise ConfigError(f"Unknown schedule {self.schedule!r}. "
                              "Use constant, decay or plateau.")
        if self.clip_mode not in ("norm", "value"):
            raise ConfigError(f"Unknown clip mode {self.clip_mode!r}. Use norm or value.")
        if self.level not in ("char", "word"):
            raise ConfigError(f"Unknown level {self.level!r}. Use char or word.")

    @classmethod
    def from_json(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def parse_duration(text: str) -> float:
    """'90', '90s', '10m', '1h30m', '1.5h' -> seconds."""
    s = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", s)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([hms])", "", s).strip():
        raise ConfigError(f"Cannot read the duration {text!r}. Write it like 90s, 10m or 1h30m.")
    unit = {"h": 3600, "m": 60, "s": 1}
    return sum(float(n) * unit[u] for n, u in parts)


# ------------------------------------------------------------------------ data
@dataclass
class Corpus:
    vocab: Vocab
    train_ids: np.ndarray
    valid_ids: np.ndarray | None


def split_validation(text: str, fraction: float) -> tuple[str, str]:
    """The last ``fraction`` of the text as validation, cut at the first line break after
    that point so that no line is split."""
    cut = int(len(text) * (1.0 - fraction))
    nl = text.find("\n", cut)
    cut = len(text) if nl < 0 else nl + 1
    return text[:cut], text[cut:]


def prepare_corpus(texts: list[str], cfg: TrainConfig, valid_text: str | None = None) -> Corpus:
    """Vocabulary from the training text only; validation tokens outside it become <UNK>."""
    text = "\n".join(t if t.endswith("\n") or not t else t + "\n" for t in texts)
    if not text.strip():
        raise CorpusError("The corpus is empty (or only whitespace). Give a text file with "
                          "some content.")
    if valid_text is None and cfg.valid_fraction > 0:
        text, valid_text = split_validation(text, cfg.valid_fraction)
        if not valid_text.strip():
            raise CorpusError("The corpus is too small to set aside a validation part. "
                              "Use a larger corpus, --valid FILE, or --valid-fraction 0.")
    seqs = lambda t: sequence_chunks(t, prose=cfg.prose, level=cfg.level)  # noqa: E731
    vocab = Vocab.build_from_chunks(seqs(text), cfg.level, max_size=cfg.vocab_size,
                        min_count=cfg.min_count, lowercase=cfg.lowercase,
                        unk_token=cfg.unk_token)
    # One token besides <EOS> and <UNK> (a corpus like "aaaa\naa\n") is degenerate but a
    # well-defined language model: it still learns where sequences end. It trains (the command
    # line warns); a vocabulary of only <EOS> and <UNK> has nothing to learn and is refused.
    if len(vocab) <= 2:
        raise CorpusError(f"No token of the corpus is kept in the vocabulary (each must occur "
                          f"--min-count {cfg.min_count} times). Use a larger or more varied "
                          "corpus, or a lower --min-count.")
    train_ids = vocab.encode_chunks(seqs(text))
    valid_ids = vocab.encode_chunks(seqs(valid_text)) if valid_text is not None else None
    if len(train_ids) < cfg.batch * max(cfg.bptt, 2):
        raise CorpusError(f"The training text has {len(train_ids)} tokens, too few for one "
                          f"window of --batch {cfg.batch} × --bptt {cfg.bptt} "
                          f"(= {cfg.batch * cfg.bptt}). Use a larger corpus, or a smaller "
                          "--batch or --bptt.")
    if valid_ids is not None and len(valid_ids) < cfg.eval_batch:
        raise CorpusError(f"The validation text has {len(valid_ids)} tokens, fewer than "
                          f"--eval-batch {cfg.eval_batch}. Give more validation text.")
    return Corpus(vocab, train_ids, valid_ids)


def evaluate(model: Model, ids: np.ndarray, m: int = 32, T: int = 128,
             on_progress: Callable[[int], None] | None = None,
             reducer=None) -> tuple[float, int]:
    """Mean negative log-likelihood per token (nats) over a whole stream, as training sees it:
    ``m`` rows with the state carried across windows. Returns (mean NLL, tokens).
    With a ``reducer`` each process takes its share of the m rows and the sums are combined."""
    batches = Batches.from_stream(ids, m, T)
    n = batches.tokens
    if reducer is not None:
        batches = batches.rows(*reducer.share(m, "--eval-batch"))
    state = model.zero_state(batches.m)
    total = 0.0
    for k in range(len(batches)):
        X, Y = batches.window(k)
        _, nll, state, _ = model.loss(X, Y, state)
        total += nll
        if on_progress is not None:
            on_progress(X.size)
    if reducer is not None:
        total = reducer.sum(total)
    return total / n, n


# ------------------------------------------------------------------- the loop
@dataclass
class RunState:
    """Where a run is: saved in the model file's meta, restored by --resume."""

    step: int = 0
    epoch: int = 0
    window: int = 0                 # next window within the epoch
    tokens_seen: int = 0
    elapsed: float = 0.0
    lr: float = 0.0
    best_valid: float | None = None
    best_step: int = 0
    plateau_best: float | None = None
    divergences: int = 0
    history: list = field(default_factory=list)   # one dict per evaluation
    finished: bool = False


class Trainer:
    """One training run. ``run()`` trains until a limit, an interrupt or divergence."""

    def __init__(self, model: Model, corpus: Corpus, cfg: TrainConfig, out: Path,
                 callback: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, reducer=None):
        cfg.validate()
        self.model, self.corpus, self.cfg, self.out = model, corpus, cfg, Path(out)
        self.reducer = reducer     # None: one process (see the module's docstring)
        self.callback = callback or (lambda e: None)
        self.should_stop = should_stop or (lambda: False)
        self.batches = Batches.from_stream(corpus.train_ids, cfg.batch, cfg.bptt)
        if self.batches.steps_per_row < 1:
            raise CorpusError("The training text is too small for --batch "
                              f"{cfg.batch}. Use a larger corpus or a smaller --batch.")
        self.opt = make_optimizer(cfg.optimizer, cfg.lr, cfg.momentum)
        self.rng = np.random.default_rng([cfg.seed, 1])    # dropout masks
        # This process's rows of every window, and where its dropout masks come from: a share
        # draws the whole batch's mask from the same generator and keeps its rows.
        self.rows, self.part, self.mask_rng = (0, cfg.batch), self.batches, self.rng
        if reducer is not None:
            self.rows = reducer.share(cfg.batch)
            reducer.share(cfg.eval_batch, "--eval-batch")   # refused now, not at validation
            self.part = self.batches.rows(*self.rows)
            self.mask_rng = RowShare(self.rng, cfg.batch, *self.rows)
        self._agreed = {"stop": False, "elapsed": 0.0}      # see train_step
        self._t0 = time.perf_counter()                      # run_loop's start
        self.sample_rng = np.random.default_rng([cfg.seed, 2])  # progress samples only
        self.run = RunState(lr=cfg.lr)
        self._log_started = False      # restore() sets it: a resumed run appends to its log
        self.state = model.zero_state(self.part.m)
        self.best_params = {k: v.copy() for k, v in model.params.items()}
        self._undo_params: dict[str, np.ndarray] = {}   # see train_step
        self._undo_opt: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------ checkpoints
    def restore(self, meta_train: dict, arrays: dict[str, np.ndarray]) -> None:
        """Continue exactly where a saved run stopped. A damaged training state is a
        ModelFileError, another corpus a ConfigError (nothing is trained either way)."""
        n = meta_train.get("corpus_tokens")
        if isinstance(n, int) and n != len(self.corpus.train_ids):
            raise ConfigError(f"This corpus gives {len(self.corpus.train_ids):,} training "
                              f"tokens; the run saved in {self.out} was trained on {n:,}. "
                              "Resume with the same corpus and options.")
        shapes = {k: v.shape for k, v in self.model.params.items()}
        try:
            self._restore(meta_train, arrays)
            params = {k: arrays[f"train/param/{k}"] for k in shapes}
            for k, v in self.opt.state.items():
                params[k] = v
                shapes[k] = shapes[k.split("/", 1)[1]]
            for k, v in enumerate(np.asarray(a) for s in self.state
                                  for a in (s if isinstance(s, tuple) else (s,))):
                params[f"state{k}"] = v
                shapes[f"state{k}"] = (self.cfg.batch, self.model.config.hidden)
            if not 0 <= self.run.window < len(self.batches):
                raise ValueError(f"data position {self.run.window} is out of range")
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise ModelFileError(f"{self.out} has a damaged training state ({type(e).__name__}: "
                                 f"{e}). Start a new run with --force instead of --resume "
                                 "(the old file is kept as .bak).") from e
        checkpoint.check_arrays(self.out, params, shapes)
        # The file holds the whole batch's state: take this process's rows. Any number of
        # processes resumes exactly (the rest of the training state is the same on all).
        self.state = _state_rows(self.state, *self.rows)

    def _restore(self, meta_train: dict, arrays: dict[str, np.ndarray]) -> None:
        run = dict(meta_train["run"])
        self.run = RunState(**run)
        self._log_started = True
        self.best_params = {k: v.copy() for k, v in self.model.params.items()}
        for k in self.model.params:
            self.model.params[k] = arrays[f"train/param/{k}"].copy()
        self.opt.state = {k[len("train/optim/"):]: v.copy() for k, v in arrays.items()
                          if k.startswith("train/optim/")}
        self.opt.t = int(meta_train["optim_t"])
        self.opt.lr = self.run.lr
        self.rng.bit_generator.state = meta_train["rng"]
        self.sample_rng.bit_generator.state = meta_train["sample_rng"]
        self.state = _state_from_arrays(self.model, arrays)

    def save(self) -> None:
        state = self.state
        if self.reducer is not None:   # one writer: the whole batch's state, gathered
            state = self.reducer.gather_rows(self.state)
            if not self.reducer.is_writer:
                self.reducer.barrier()
                return
        extra = {f"train/param/{k}": v for k, v in self.model.params.items()}
        extra.update({f"train/optim/{k}": v for k, v in self.opt.state.items()})
        extra.update(_state_to_arrays(state))
        meta = {"run": asdict(self.run), "config": asdict(self.cfg), "optim_t": self.opt.t,
                "rng": self.rng.bit_generator.state,
                "sample_rng": self.sample_rng.bit_generator.state,
                "corpus_tokens": int(len(self.corpus.train_ids))}
        best = Model(self.model.config, self.model.vocab, self.best_params)
        checkpoint.save(self.out, best, meta, extra)
        if self.reducer is not None:   # no process leaves before the file is written
            self.reducer.barrier()

    # --------------------------------------------------------------- one step
    def train_step(self, X: np.ndarray, Y: np.ndarray) -> float | None:
        """Forward, backward, clip, update. Returns the loss per token, or None when the loss
        or a gradient was not finite (then nothing is updated and the lr is lowered)."""
        model = self.model
        # A share of the batch is averaged over the whole batch (its gradients then add up)
        share = {} if self.reducer is None else {"m_total": self.cfg.batch}
        L, nll, new_state, cache = model.loss(X, Y, self.state, self.mask_rng, **share)
        grads, _ = model.backward(cache)
        if self.reducer is not None:
            # One Allreduce: the gradients, the loss, and each process's wish to stop and its
            # clock, so that the limits below are decided alike everywhere.
            grads, (nll, stop, elapsed) = self.reducer.allreduce(
                grads, [nll, float(self.should_stop()), time.perf_counter() - self._t0])
            L = nll / self.cfg.batch
            self._agreed = {"stop": stop > 0, "elapsed": elapsed / self.reducer.size}
        norm = clip_gradients(grads, self.cfg.clip, self.cfg.clip_mode)
        finite = math.isfinite(L) and math.isfinite(norm)
        if finite:
            # Finite gradients can still overflow the parameters (a huge --lr): keep an undo
            # point (copies into preallocated buffers, cheap beside a step) and check.
            self._snapshot()
            self.opt.update(model.params, grads)
            finite = all(math.isfinite(float(v.sum(dtype=np.float64)))
                         for v in model.params.values())
            if not finite:
                self._undo()
        if not finite:
            self.run.divergences += 1
            self.run.lr *= 0.5
            self.opt.lr = self.run.lr
            self.state = model.zero_state(self.part.m)
            self.callback({"kind": "warning", "message":
                           f"step {self.run.step + 1}: the loss or its gradient is not finite; "
                           f"the step was undone and the learning rate lowered to "
                           f"{self.run.lr:.3g}."})
            if self.run.divergences >= MAX_DIVERGENCES:
                self.validate_now()   # the parameters are the last good ones: keep them
                self.save()
                raise TrainingDiverged(
                    f"Training diverged {MAX_DIVERGENCES} times in a row (NaN or infinite "
                    f"loss). The last good model is saved in {self.out}. Lower --lr or "
                    "--clip and train again.")
            return None
        self.run.divergences = 0
        self.state = new_state
        return nll / (X.shape[0] * self.cfg.batch)

    def _snapshot(self) -> None:
        """Copy the parameters and optimizer state to the undo buffers."""
        for src, dst in ((self.model.params, self._undo_params), (self.opt.state, self._undo_opt)):
            for k, v in src.items():
                b = dst.get(k)
                if b is None or b.shape != v.shape or b.dtype != v.dtype:
                    b = dst[k] = np.empty_like(v)
                np.copyto(b, v)
        self._undo_keys = set(self.opt.state)
        self._undo_t = self.opt.t

    def _undo(self) -> None:
        """Put back what :meth:`_snapshot` saved (an update that made a parameter non-finite)."""
        for k, v in self.model.params.items():
            np.copyto(v, self._undo_params[k])
        for k in list(self.opt.state):
            if k in self._undo_keys:
                np.copyto(self.opt.state[k], self._undo_opt[k])
            else:
                del self.opt.state[k]   # created by the undone step
        self.opt.t = self._undo_t

    # --------------------------------------------------------------- the run
    def limits_reached(self, start: float) -> str | None:
        c, r = self.cfg, self.run
        if c.steps and r.step >= c.steps:
            return "steps"
        if c.epochs and r.epoch >= c.epochs:
            return "epochs"
        now = (self._agreed["elapsed"] if self.reducer is not None
               else time.perf_counter() - start)
        if c.time_budget and r.elapsed + now >= c.time_budget:
            return "time"
        return None

    def validate_now(self) -> dict:
        c, r = self.cfg, self.run
        record = {"step": r.step, "epoch": r.epoch + r.window / len(self.batches),
                  "tokens": r.tokens_seen, "lr": r.lr}
        if self.corpus.valid_ids is not None:
            t0 = time.perf_counter()
            loss, n = evaluate(self.model, self.corpus.valid_ids, c.eval_batch, c.bptt,
                               reducer=self.reducer)
            record.update(valid_loss=loss, valid_tokens=n, eval_seconds=time.perf_counter() - t0)
            improved = math.isfinite(loss) and (r.best_valid is None or loss < r.best_valid)
            if improved:
                r.best_valid, r.best_step = loss, r.step
                self.best_params = {k: v.copy() for k, v in self.model.params.items()}
            if c.schedule == "plateau":
                if r.plateau_best is not None and loss >= r.plateau_best:
                    r.lr *= c.decay
                    self.opt.lr = r.lr
                r.plateau_best = loss if r.plateau_best is None else min(loss, r.plateau_best)
            record["best"] = improved
        else:
            self.best_params = {k: v.copy() for k, v in self.model.params.items()}
        r.history.append(record)
        return record

    def progress_sample(self) -> str:
        length = self.cfg.sample_length or (200 if self.cfg.level == "char" else 50)
        try:
            s = draw_sample(self.model, self.sample_rng, length=length)
        except CharlmError as e:   # a progress sample must never stop training
            return f"(no sample: {e})"
        return self.model.vocab.decode(s.ids)

    def run_loop(self) -> str:
        """Train until a limit is reached. Returns why it stopped: steps, epochs, time,
        interrupted, or finished (nothing left to do)."""
        c, r = self.cfg, self.run
        start = self._t0 = time.perf_counter()
        n_windows = len(self.batches)
        self.callback({"kind": "start", "windows_per_epoch": n_windows,
                       "tokens_per_epoch": self.batches.tokens, "step": r.step,
                       "epoch": r.epoch, "params": self.model.n_params(),
                       "vocab": len(self.model.vocab)})
        losses: list[float] = []
        reason = self.limits_reached(start)
        while reason is None:
            if self._agreed["stop"] if self.reducer is not None else self.should_stop():
                reason = "interrupted"
                break
            if r.window == 0:
                self.state = self.model.zero_state(self.part.m)   # a new epoch: a<0> = 0
            X, Y = self.part.window(r.window)
            t0 = time.perf_counter()
            loss = self.train_step(X, Y)
            dt = time.perf_counter() - t0
            tokens = X.shape[0] * c.batch      # the whole batch's, over every process
            r.step += 1
            r.tokens_seen += tokens
            r.window += 1
            if r.window >= n_windows:
                r.window = 0
                r.epoch += 1
                if c.schedule == "decay" and r.epoch >= c.decay_after:
                    r.lr *= c.decay
                    self.opt.lr = r.lr
            if loss is not None:
                losses.append(loss)
            self.callback({"kind": "step", "step": r.step, "epoch": r.epoch,
                           "window": r.window, "windows": n_windows, "loss": loss,
                           "tokens": tokens, "seconds": dt, "lr": r.lr,
                           "elapsed": r.elapsed + time.perf_counter() - start})
            reason = self.limits_reached(start)
            if c.eval_every and r.step % c.eval_every == 0 and reason is None:
                self._evaluate_and_save(start, losses)
                losses = []
            if c.sample_every and r.step % c.sample_every == 0:
                self.callback({"kind": "sample", "step": r.step, "text": self.progress_sample()})
        r.elapsed += time.perf_counter() - start
        start = time.perf_counter()
        if reason != "interrupted":
            r.finished = True
            self._evaluate_and_save(start, losses)
        else:
            r.finished = False   # a resumed run that was finished is no longer
            self.save()
            self.callback({"kind": "saved", "path": str(self.out), "step": r.step})
        r.elapsed += time.perf_counter() - start
        return reason

    def _evaluate_and_save(self, start: float, losses: list[float]) -> None:
        record = self.validate_now()
        record["train_loss"] = float(np.mean(losses)) if losses else None
        self.save()
        self._log(record)
        self.callback({"kind": "eval", **record})

    def _log(self, record: dict) -> None:
        if self.reducer is not None and not self.reducer.is_writer:
            return
        path = log_path(self.out)
        # a new run starts a new log (a resumed one continues its own)
        with open(path, "a" if self._log_started else "w", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self._log_started = True


def log_path(out: Path) -> Path:
    """The JSON-lines evaluation log beside a model file: models/char.npz -> char.log.jsonl."""
    return out.with_name(out.stem + ".log.jsonl")


def _state_to_arrays(state: list) -> dict[str, np.ndarray]:
    out = {}
    for l, s in enumerate(state, start=1):
        if isinstance(s, tuple):
            out[f"train/state/L{l}/a"], out[f"train/state/L{l}/c"] = s
        else:
            out[f"train/state/L{l}/a"] = s
    return out


def _state_rows(state: list, lo: int, hi: int) -> list:
    """Rows [lo, hi) of every layer's (m, n_a) state (each array of an LSTM's (a, c) pair)."""
    return [tuple(x[lo:hi].copy() for x in s) if isinstance(s, tuple) else s[lo:hi].copy()
            for s in state]


def _state_from_arrays(model: Model, arrays: dict[str, np.ndarray]) -> list:
    state = []
    for l in range(1, model.config.layers + 1):
        a = arrays[f"train/state/L{l}/a"].copy()
        state.append((a, arrays[f"train/state/L{l}/c"].copy())
                     if model.config.cell == "lstm" else a)
    return state

