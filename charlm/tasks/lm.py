"""The language-model task: truncated BPTT over windows of one token stream.

The training stream is laid out as ``batch`` rows and cut into windows of ``bptt`` steps
(``data.Batches``); the hidden state at the end of a window starts the next one (carried, but
no gradient flows back through it) and is reset to zero at the start of every epoch and after
an undone step. Validation: mean negative log-likelihood per token, lower is better.

Over MPI (a ``reducer``, see :mod:`charlm.distributed`) each process trains the contiguous rows
``rows = (lo, hi)`` of the ``B = batch`` rows of every window and carries only their state; its
loss is averaged over the whole B (``Model.loss(m_total=B)``), so the processes' gradients add
up to one process's, and its dropout masks are its rows of the whole batch's masks
(``layers.RowShare``). Validation is sharded the same way over ``--eval-batch`` and summed.
The model file holds the whole batch's state (gathered), so a run resumes with any number of
processes.
"""

from __future__ import annotations

import time

import numpy as np

from .stream import Batches
from ..errors import CharlmError, CorpusError
from ..nn.sampling import sample as draw_sample
from ..nn.layers import RowShare


class LMTask:
    name = "lm"
    metric = "valid_loss"
    higher_is_better = False

    def __init__(self, corpus, cfg, model, reducer=None):
        self.corpus, self.cfg, self.reducer = corpus, cfg, reducer
        self.batches = Batches.from_stream(corpus.train_ids, cfg.batch, cfg.bptt)
        if self.batches.steps_per_row < 1:
            raise CorpusError("The training text is too small for --batch "
                              f"{cfg.batch}. Use a larger corpus or a smaller --batch.")
        self.train_tokens = int(len(corpus.train_ids))
        self.tokens_per_epoch = self.batches.tokens
        self.has_validation = corpus.valid_ids is not None
        self.rows, self.part = (0, cfg.batch), self.batches   # this process's rows
        if reducer is not None:
            self.rows = reducer.share(cfg.batch)
            reducer.share(cfg.eval_batch, "--eval-batch")   # refused now, not at validation
            self.part = self.batches.rows(*self.rows)
        self.state = model.zero_state(self.part.m)

    def start_epoch(self, model, epoch: int) -> None:
        self.state = model.zero_state(self.part.m)   # a new epoch starts from a<0> = 0

    def loss(self, model, epoch: int, k: int, rng):
        X, Y = self.part.window(k)
        if self.reducer is None:
            L, nll, new_state, cache = model.loss(X, Y, self.state, rng)
        else:   # a share: the whole batch's masks and average (its gradients then add up)
            B = self.cfg.batch
            L, nll, new_state, cache = model.loss(X, Y, self.state, RowShare(rng, B, *self.rows),
                                                  m_total=B)
        return L, nll, X.size, (new_state, cache)

    def backward(self, model, cache) -> dict:
        return model.backward(cache[1])[0]

    def accept(self, cache) -> None:
        self.state = cache[0]

    def reject(self, model) -> None:
        self.state = model.zero_state(self.part.m)

    def validate(self, model) -> dict:
        from ..training.trainer import evaluate   # train imports this module
        t0 = time.perf_counter()
        loss, n = evaluate(model, self.corpus.valid_ids, self.cfg.eval_batch, self.cfg.bptt,
                           reducer=self.reducer)
        return {"valid_loss": loss, "valid_tokens": n, "eval_seconds": time.perf_counter() - t0}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The whole batch's carried state (B, n_a) per layer; over MPI gathered from every
        process (a collective: every process calls it)."""
        state = self.state if self.reducer is None else self.reducer.gather_rows(self.state)
        out = {}
        for l, s in enumerate(state, start=1):
            if isinstance(s, tuple):
                out[f"train/state/L{l}/a"], out[f"train/state/L{l}/c"] = s
            else:
                out[f"train/state/L{l}/a"] = s
        return out

    def load_state_arrays(self, model, arrays: dict[str, np.ndarray]) -> None:
        state = []
        for l in range(1, model.config.layers + 1):
            a = arrays[f"train/state/L{l}/a"].copy()
            state.append((a, arrays[f"train/state/L{l}/c"].copy())
                         if model.config.cell == "lstm" else a)
        if self.reducer is not None:   # this process's rows of the whole batch's state
            for s in state:
                for x in s if isinstance(s, tuple) else (s,):
                    if x.shape[:1] != (self.cfg.batch,):
                        raise ValueError(f"a carried state of {x.shape[0]} rows, not "
                                         f"--batch {self.cfg.batch}")
            lo, hi = self.rows
            state = [tuple(x[lo:hi].copy() for x in s) if isinstance(s, tuple)
                     else s[lo:hi].copy() for s in state]
        self.state = state

    def progress_sample(self, model, rng) -> str:
        length = self.cfg.sample_length or (200 if self.cfg.level == "char" else 50)
        try:
            s = draw_sample(model, rng, length=length)
        except CharlmError as e:   # a progress sample must never stop training
            return f"(no sample: {e})"
        return model.vocab.decode(s.ids)
