"""The language-model task: truncated BPTT over windows of one token stream.

The training stream is laid out as ``batch`` rows and cut into windows of ``bptt`` steps
(``data.Batches``); the hidden state at the end of a window starts the next one (carried, but
no gradient flows back through it) and is reset to zero at the start of every epoch and after
an undone step. Validation: mean negative log-likelihood per token, lower is better.
"""

from __future__ import annotations

import time

import numpy as np

from ..data import Batches
from ..errors import CharlmError, CorpusError
from ..generate import sample as draw_sample


class LMTask:
    name = "lm"
    metric = "valid_loss"
    higher_is_better = False

    def __init__(self, corpus, cfg, model):
        self.corpus, self.cfg = corpus, cfg
        self.batches = Batches.from_stream(corpus.train_ids, cfg.batch, cfg.bptt)
        if self.batches.steps_per_row < 1:
            raise CorpusError("The training text is too small for --batch "
                              f"{cfg.batch}. Use a larger corpus or a smaller --batch.")
        self.train_tokens = int(len(corpus.train_ids))
        self.tokens_per_epoch = self.batches.tokens
        self.has_validation = corpus.valid_ids is not None
        self.state = model.zero_state(cfg.batch)

    def start_epoch(self, model, epoch: int) -> None:
        self.state = model.zero_state(self.cfg.batch)   # a new epoch starts from a<0> = 0

    def loss(self, model, epoch: int, k: int, rng):
        X, Y = self.batches.window(k)
        L, nll, new_state, cache = model.loss(X, Y, self.state, rng)
        return L, nll, X.size, (new_state, cache)

    def backward(self, model, cache) -> dict:
        return model.backward(cache[1])[0]

    def accept(self, cache) -> None:
        self.state = cache[0]

    def reject(self, model) -> None:
        self.state = model.zero_state(self.cfg.batch)

    def validate(self, model) -> dict:
        from ..train import evaluate   # train imports this module
        t0 = time.perf_counter()
        loss, n = evaluate(model, self.corpus.valid_ids, self.cfg.eval_batch, self.cfg.bptt)
        return {"valid_loss": loss, "valid_tokens": n, "eval_seconds": time.perf_counter() - t0}

    def state_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for l, s in enumerate(self.state, start=1):
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
        self.state = state

    def progress_sample(self, model, rng) -> str:
        length = self.cfg.sample_length or (200 if self.cfg.level == "char" else 50)
        try:
            s = draw_sample(model, rng, length=length)
        except CharlmError as e:   # a progress sample must never stop training
            return f"(no sample: {e})"
        return model.vocab.decode(s.ids)
