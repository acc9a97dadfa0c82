"""The training loop: corpus text -> trained model file, for every task.

A task (:mod:`charlm.tasks`: the language model's windows of a stream, the tagger's and the
classifier's padded batches of sentences) supplies the batches of an epoch, the loss and its
backward, and the validation metric with its direction. The loop is the trainer's: each step
is forward and loss ``L = Σ_t L<t>`` (averaged over the batch), backward, clipping, optimizer
update; limits, evaluation and keep-the-best, ``--patience``, checkpoints, interruption and the
divergence guard are the same for every task. For the language model (truncated
backpropagation through time, the state carried across windows) see :mod:`charlm.tasks.lm`.

The trainer never prints: it reports through ``callback(event)`` with plain dicts (``kind`` is
``start``, ``step``, ``eval``, ``sample``, ``warning``, ``notice``, ``saved``), and asks
``should_stop()`` between steps so that an interrupt ends it cleanly with a resumable
checkpoint.

Data-parallel training (``mpiexec -n N``) is one hook, ``reducer``
(``charlm.training.distributed``):
the task trains this process's share of each batch (the language model: rows ``task.rows`` of
every window), and the reducer sums what the processes computed (the gradients, loss and token
count of each step in one all-reduce, the validation sums) so that every decision below is
taken on the same numbers by every process. Without it nothing changes. The sentence tasks do
not take a share yet (the trainer refuses them under MPI); they would use it the same way:
each process a contiguous slice of the batch's sentences, its loss divided by the whole
batch's count, which every process can compute from the whole batch.
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

from ..errors import ConfigError, ModelFileError, TrainingDiverged
from ..nn.model import Model
from ..nn.optim import OPTIMIZERS, clip_gradients, make_optimizer
from ..text.vocab import TOKENIZERS
from . import checkpoint

MAX_DIVERGENCES = 5   # consecutive non-finite steps before training gives up
# A loss per token above this many times ln V (the untrained model's loss: a uniform guess over
# the V tokens) is divergence too, though finite: undone like a NaN.
DIVERGENCE_FACTOR = 3.0


@dataclass
class TrainConfig:
    """Everything about a run that is not the model's shape."""

    level: str = "char"
    tokenizer: str = "words"        # word level: words | whitespace
    prose: bool = False
    lowercase: bool = False
    vocab_size: int = 10000
    min_count: int = 1
    unk_token: str = "<unk>"
    label_column: str = "auto"      # classify: which column of a labelled line is the label
    optimizer: str = "adam"
    lr: float = 2e-3
    momentum: float = 0.0
    schedule: str = "constant"      # constant | decay | plateau
    decay: float = 0.5              # factor for decay and plateau
    decay_after: int = 1            # decay: first epoch after which lr is multiplied
    clip: float | None = None       # None: default_clip(), set by the Trainer
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
    patience: int = 0               # stop after this many evaluations without improvement
    init_scale: float | None = None  # uniform ±init_scale for every weight; None: the cells'
    init_from: str | None = None    # the model file whose parameters started this run
    encoding: str = "utf-8"         # of the corpus files (resume reads them again)
    reverse: bool = False           # read each line backwards (a backward character LM)

    def validate(self) -> None:
        for name in ("batch", "bptt", "eval_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1 "
                                  f"(got {getattr(self, name)}).")
        for name in ("lr", "clip", "momentum", "decay"):
            v = getattr(self, name)
            if v is None and name == "clip":
                continue
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
        for name in ("epochs", "steps", "eval_every", "sample_every", "time_budget",
                     "patience"):
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
        if self.label_column not in ("auto", "first", "last"):
            raise ConfigError(f"--label-column must be auto, first or last (got "
                              f"{self.label_column!r}).")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"Unknown tokenizer {self.tokenizer!r}. Use words or whitespace.")
        if self.init_scale is not None and not (math.isfinite(self.init_scale)
                                                and self.init_scale > 0):
            raise ConfigError(f"--init-scale must be a positive number (got "
                              f"{self.init_scale}). Leave it out for the default "
                              "initialisation.")
        if self.reverse and (self.level != "char" or self.prose):
            raise ConfigError("--reverse reads each line's characters backwards: it applies "
                              "to --level char without --prose. Drop it or those options.")

    def default_clip(self, task: str) -> float:
        """``--clip`` when none is given: a bound on the norm of the gradient of
        ``L = Σ_t L<t>``. For a language model trained with Adam, 5 per step of the window
        (5 × bptt: 5 on the loss per step, which is PyTorch's ``clip_grad_norm_(5)`` of a mean
        loss): it clips the rare spikes only. A flat 5 on a 128-step window's sum clipped every
        step of the default recipe (600 of 600, against 1 of 600 with 5 per step), which makes
        Adam's steps those of normalised gradients: ahead for about 120 steps, then 0.011-0.015
        nats/char behind to step 600 (``bench/same_init.py``, docs/benchmarks.md). Otherwise 5,
        the SGD recipes' own (Zaremba et al. clip the summed loss at 5)."""
        return 5.0 * self.bptt if task == "lm" and self.optimizer == "adam" else 5.0

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
    since_best: int = 0             # evaluations since the best one (--patience)
    history: list = field(default_factory=list)   # one dict per evaluation
    finished: bool = False


class Trainer:
    """One training run. ``run()`` trains until a limit, an interrupt or divergence."""

    def __init__(self, model: Model, task, cfg: TrainConfig, out: Path,
                 callback: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, reducer=None):
        """``task``: what is trained (see :mod:`charlm.tasks`: the language model's
        ``LMTask``, ``TagTask``, ``ClassifyTask``). ``reducer``: None (one process) or a
        ``charlm.training.distributed.Reducer`` (see the module's docstring); the task then
        trains this process's share of each batch (``task.takes_share``)."""
        if cfg.clip is None:
            cfg.clip = cfg.default_clip(task.name)
        cfg.validate()
        corpus = getattr(task, "corpus", None)
        if reducer is not None and not getattr(task, "takes_share", False):
            raise ConfigError(f"--task {task.name} cannot be trained over MPI yet (only the "
                              "language model can). Run it without mpiexec.")
        self.reducer = reducer
        self._agreed = {"stop": False, "elapsed": 0.0}   # see train_step
        self._t0 = time.perf_counter()                   # _run_loop's start
        self.model, self.corpus, self.cfg, self.out = model, corpus, cfg, Path(out)
        self.task = task
        self.callback = callback or (lambda e: None)
        self.should_stop = should_stop or (lambda: False)
        self.batches = task.batches
        self.opt = make_optimizer(cfg.optimizer, cfg.lr, cfg.momentum)
        self.rng = np.random.default_rng([cfg.seed, 1])    # dropout masks
        self.sample_rng = np.random.default_rng([cfg.seed, 2])  # progress samples only
        self.run = RunState(lr=cfg.lr)
        self._log_started = False      # restore() sets it: a resumed run appends to its log
        self.best_params = {k: v.copy() for k, v in model.params.items()}
        self._undo_params: dict[str, np.ndarray] = {}   # see train_step
        self._undo_opt: dict[str, np.ndarray] = {}
        # ln K is an untrained model's loss per token, K its outputs (vocabulary, labels)
        self.diverged_above = DIVERGENCE_FACTOR * math.log(max(model.params["b_y"].shape[0], 2))
        self.corpus_record: dict | None = None   # meta["train"]["corpus"]: files, checksums
        self.changes: dict = {}    # stated changes on --resume, logged with the next record
        self.resumed = False
        self._just_undone = False

    # ------------------------------------------------------------ checkpoints
    def restore(self, meta_train: dict, arrays: dict[str, np.ndarray]) -> None:
        """Continue exactly where a saved run stopped. A damaged training state is a
        ModelFileError, another corpus a ConfigError (nothing is trained either way)."""
        n = meta_train.get("corpus_tokens")
        if isinstance(n, int) and n != self.task.train_tokens:
            raise ConfigError(f"This corpus gives {self.task.train_tokens:,} training "
                              f"tokens; the run saved in {self.out} was trained on {n:,}. "
                              "Resume with the same corpus and options.")
        shapes = {k: v.shape for k, v in self.model.params.items()}
        state_shapes = {k: v.shape for k, v in self.task.state_arrays().items()}
        try:
            self._restore(meta_train, arrays)
            params = {k: arrays[f"train/param/{k}"] for k in shapes}
            for k, v in self.opt.state.items():
                params[k] = v
                shapes[k] = shapes[k.split("/", 1)[1]]
            params.update(self.task.state_arrays())
            shapes.update(state_shapes)
            if not 0 <= self.run.window < len(self.batches):
                raise ValueError(f"data position {self.run.window} is out of range")
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise ModelFileError(f"{self.out} has a damaged training state ({type(e).__name__}: "
                                 f"{e}). Start a new run with --force instead of --resume "
                                 "(the old file is kept as .bak).") from e
        checkpoint.check_arrays(self.out, params, shapes)

    def _restore(self, meta_train: dict, arrays: dict[str, np.ndarray]) -> None:
        run = dict(meta_train["run"])
        self.run = RunState(**run)
        self._log_started = True
        self.resumed = True
        self.best_params = {k: v.copy() for k, v in self.model.params.items()}
        for k in self.model.params:
            self.model.params[k] = arrays[f"train/param/{k}"].copy()
        self.opt.state = {k[len("train/optim/"):]: v.copy() for k, v in arrays.items()
                          if k.startswith("train/optim/")}
        self.opt.t = int(meta_train["optim_t"])
        self.opt.lr = self.run.lr
        self.rng.bit_generator.state = meta_train["rng"]
        self.sample_rng.bit_generator.state = meta_train["sample_rng"]
        self.task.load_state_arrays(self.model, arrays)

    def save(self) -> None:
        state = self.task.state_arrays()   # under MPI: gathered from every process
        if self.reducer is not None and not self.reducer.is_writer:
            self.reducer.barrier()         # one writer: wait until it has written
            return
        extra = {f"train/param/{k}": v for k, v in self.model.params.items()}
        extra.update({f"train/optim/{k}": v for k, v in self.opt.state.items()})
        extra.update(state)
        meta = {"run": asdict(self.run), "config": asdict(self.cfg), "optim_t": self.opt.t,
                "rng": self.rng.bit_generator.state,
                "sample_rng": self.sample_rng.bit_generator.state,
                "corpus_tokens": int(self.task.train_tokens)}
        if self.corpus_record is not None:
            meta["corpus"] = self.corpus_record
        best = Model(self.model.config, self.model.vocab, self.best_params, self.model.labels,
                     self.model.features)
        checkpoint.save(self.out, best, meta, extra)
        if self.reducer is not None:   # no process goes on before the file is written
            self.reducer.barrier()

    # --------------------------------------------------------------- one step
    def train_step(self, k: int) -> tuple[float | None, int]:
        """Forward, backward, clip, update on batch k of the epoch. Returns the loss per token
        (None when the loss or a gradient was not finite, or the loss was more than
        DIVERGENCE_FACTOR × ln K of an untrained model: then nothing is updated and the lr is
        lowered) and the number of tokens."""
        model = self.model
        L, nll, tokens, cache = self.task.loss(model, self.run.epoch, k, self.rng)
        grads = None
        if self.reducer is not None:
            # One Allreduce: the gradients, the loss and token count, each process's wish to
            # stop and its clock; every branch below is then taken alike by every process.
            grads = self.task.backward(model, cache)
            grads, (L, nll, tokens, stop, elapsed) = self.reducer.allreduce(
                grads, [L, nll, tokens, float(self.should_stop()),
                        time.perf_counter() - self._t0])
            tokens = int(round(tokens))
            self._agreed = {"stop": stop > 0, "elapsed": elapsed / self.reducer.size}
        per_token = nll / max(tokens, 1)
        if math.isfinite(per_token) and per_token > self.diverged_above:
            # Finite but far worse than an untrained model: the last update made these
            # parameters, so that update is undone (its undo point is still kept).
            if self._undo_params:
                self._undo()
            return self._diverged(f"the loss {per_token:.3g} nats/token is more than "
                                  f"{DIVERGENCE_FACTOR:g} × ln K = {self.diverged_above:.3g} "
                                  "(an untrained model's loss)"), tokens
        # A sane loss after an ordinary step shows that step's update was good; after an
        # undone one it shows only that the undo worked, so the count of divergences in a
        # row goes on (else a too-high lr would alternate diverge, undo, diverge for ever).
        if not self._just_undone:
            self.run.divergences = 0
        self._just_undone = False
        if grads is None:
            grads = self.task.backward(model, cache)
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
            return self._diverged("the loss or its gradient is not finite"), tokens
        self.task.accept(cache)
        return per_token, tokens

    def _diverged(self, why: str) -> None:
        """A diverging step: lower the lr, let the task drop what it carries (the LM's state);
        give up after MAX_DIVERGENCES in a row."""
        self._just_undone = True
        self.run.divergences += 1
        self.run.lr *= 0.5
        self.opt.lr = self.run.lr
        self.task.reject(self.model)
        self.callback({"kind": "warning", "message":
                       f"step {self.run.step + 1}: {why}; the step was undone and the "
                       f"learning rate lowered to {self.run.lr:.3g}."})
        if self.run.divergences >= MAX_DIVERGENCES:
            self.validate_now()   # the parameters are the last good ones: keep them
            self.save()
            raise TrainingDiverged(
                f"Training diverged {MAX_DIVERGENCES} times in a row (NaN, infinite or "
                f"exploding loss). The last good model is saved in {self.out}. Lower --lr or "
                "--clip and train again.")
        return None

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
        now = (self._agreed["elapsed"] if self.reducer is not None   # the same on every rank
               else time.perf_counter() - start)
        if c.time_budget and r.elapsed + now >= c.time_budget:
            return "time"
        if c.patience and r.since_best >= c.patience:
            return "patience"
        return None

    def validate_now(self) -> dict:
        c, r = self.cfg, self.run
        record = {"step": r.step, "epoch": r.epoch + r.window / len(self.batches),
                  "tokens": r.tokens_seen, "lr": r.lr}
        if self.changes:   # what --resume changed, stated once in the history
            record["changes"], self.changes = self.changes, {}
        if self.task.has_validation:
            record.update(self.task.validate(self.model))
            value = record[self.task.metric]
            # compare as a loss: lower is better (an F1 or an accuracy is negated)
            sign = -1.0 if self.task.higher_is_better else 1.0
            loss = sign * value
            improved = math.isfinite(loss) and (r.best_valid is None
                                                or loss < sign * r.best_valid)
            if improved:
                r.best_valid, r.best_step = value, r.step
                r.since_best = 0
                self.best_params = {k: v.copy() for k, v in self.model.params.items()}
            else:
                r.since_best += 1
            if c.schedule == "plateau":
                if r.plateau_best is not None and loss >= sign * r.plateau_best:
                    r.lr *= c.decay
                    self.opt.lr = r.lr
                if r.plateau_best is None or not sign * r.plateau_best < loss:
                    r.plateau_best = value          # as min(loss, best) would keep it
            record["best"] = improved
        else:
            self.best_params = {k: v.copy() for k, v in self.model.params.items()}
        r.history.append(record)
        return record

    def progress_sample(self) -> str:
        show = getattr(self.task, "progress_sample", None)
        return show(self.model, self.sample_rng) if show is not None else ""

    def run_loop(self) -> str:
        """Train until a limit is reached. Returns why it stopped: steps, epochs, time,
        interrupted, or nothing (a resumed run whose limits were already reached: it trains
        nothing and adds nothing to the history)."""
        # A diverging step overflows on purpose (it is caught and undone): numpy's warnings
        # about it would only reach the user as noise.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return self._run_loop()

    def _run_loop(self) -> str:
        c, r = self.cfg, self.run
        start = self._t0 = time.perf_counter()
        self._agreed = {"stop": False, "elapsed": 0.0}
        n_windows = len(self.batches)
        self.callback({"kind": "start", "windows_per_epoch": n_windows,
                       "tokens_per_epoch": self.task.tokens_per_epoch, "step": r.step,
                       "epoch": r.epoch, "params": self.model.n_params(),
                       "vocab": len(self.model.vocab), "task": self.task.name})
        losses: list[float] = []
        reason = self.limits_reached(start)
        if reason is not None and self.resumed:
            return "nothing"
        while reason is None:
            if self._agreed["stop"] if self.reducer is not None else self.should_stop():
                reason = "interrupted"
                break
            if r.window == 0:
                self.task.start_epoch(self.model, r.epoch)
            t0 = time.perf_counter()
            loss, tokens = self.train_step(r.window)
            dt = time.perf_counter() - t0
            self.advance(tokens)
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
                reason = self.limits_reached(start)    # --patience
            if c.sample_every and r.step % c.sample_every == 0:
                self.callback({"kind": "sample", "step": r.step, "text": self.progress_sample()})
        r.elapsed += time.perf_counter() - start
        start = time.perf_counter()
        if reason == "patience":     # evaluated at this very step: only save
            r.finished = True
            self.save()
        elif reason != "interrupted":
            r.finished = True
            self._evaluate_and_save(start, losses)
        else:
            r.finished = False   # a resumed run that was finished is no longer
            self.save()
            self.callback({"kind": "saved", "path": str(self.out), "step": r.step})
        r.elapsed += time.perf_counter() - start
        return reason

    def advance(self, tokens: int) -> None:
        """Count a step of ``tokens`` tokens and move to the next window: at the end of an
        epoch, to the first window of the next (and, with ``--schedule decay``, the lower lr).
        :meth:`run_loop` calls it after every :meth:`train_step`; so does a caller that drives
        the steps itself (``bench/same_init.py``)."""
        c, r = self.cfg, self.run
        r.step += 1
        r.tokens_seen += tokens
        r.window += 1
        if r.window >= len(self.batches):
            r.window = 0
            r.epoch += 1
            if c.schedule == "decay" and r.epoch >= c.decay_after:
                r.lr *= c.decay
                self.opt.lr = r.lr

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

