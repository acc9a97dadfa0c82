"""The language-model task: truncated BPTT over windows of one token stream.

The training stream is laid out as ``batch`` rows and cut into windows of ``bptt`` steps
(``data.Batches``); the hidden state at the end of a window starts the next one (carried, but
no gradient flows back through it) and is reset to zero at the start of every epoch and after
an undone step. Validation: mean negative log-likelihood per token, lower is better.

Over MPI (a ``reducer``, see :mod:`charlm.training.distributed`) each process trains the
contiguous rows
``rows = (lo, hi)`` of the ``B = batch`` rows of every window and carries only their state; its
loss is averaged over the whole B (``Model.loss(m_total=B)``), so the processes' gradients add
up to one process's, and its dropout masks are its rows of the whole batch's masks
(``layers.RowShare``). Validation is sharded the same way over ``--eval-batch`` and summed.
The model file holds the whole batch's state (gathered), so a run resumes with any number of
processes.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..errors import CharlmError, CorpusError
from ..nn.layers import RowShare
from ..nn.model import Model
from ..nn.sampling import sample as draw_sample
from ..text.bundled import bundled
from .stream import Batches, prepare_corpus

# ------------------------------------------------------------ the run set-up
DEFAULTS: dict = {}          # the language model's defaults are ModelConfig's and TrainConfig's
# Options that apply to the language model only: text as a stream cut into --bptt windows
# (prose paragraphs, the word tokenizer, the corpus's own unknown marker, lines read
# backwards) and the progress samples' length. --sample-every is the tagger's too.
OPTIONS = ("prose", "bptt", "tokenizer", "unk_token", "reverse", "sample_length",
           "sample_every")
DEFAULT_CORPUS = ("tinyshakespeare.txt",)
DEFAULT_NOTICE = "Training on the bundled corpus: tiny Shakespeare (1.1 MB)."


def complete(options: dict, given: dict) -> dict:
    """Nothing to adjust."""
    return options


def check(mcfg, tcfg) -> None:
    """Nothing beyond each config's own checks."""


def default_corpus() -> tuple[list, None]:
    """The bundled corpus (training files, validation file) when none is given."""
    return [bundled(n) for n in DEFAULT_CORPUS], None


def read_data(sources, cfg, known=None):
    """The corpus: vocabulary (the training text's, or ``known``'s for --init-from) and the
    training and validation streams."""
    valid = sources.valid[1] if sources.valid is not None else None
    return prepare_corpus([t for _, t in sources.files], cfg, valid,
                          vocab=known.vocab if known is not None else None)


def same_data(model, data) -> bool:
    return data.vocab.tokens == model.vocab.tokens


def create_model(config, data, rng, lms=None):
    return Model.create(config, data.vocab, rng)


def make_task(data, cfg, model, reducer=None):
    return LMTask(data, cfg, model, reducer)


class LMTask:
    name = "lm"
    takes_share = True      # over MPI, each process trains its rows of every window
    metric = "valid_loss"
    higher_is_better = False
    unit = "token"          # what the trainer's counts and losses are per
    samples = True          # progress shows a sample at each evaluation

    def epoch_line(self, cfg, labels, tokens: int, windows: int) -> str:
        """What an epoch is, said when training starts."""
        return f"{tokens:,} tokens per epoch in {windows:,} windows of {cfg.batch}×{cfg.bptt}."

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


def evaluate(model, ids: np.ndarray, m: int = 32, T: int = 128,
             on_progress: Callable[[int], None] | None = None,
             reducer=None,
             on_window: Callable[[np.ndarray, np.ndarray], None] | None = None
             ) -> tuple[float, int]:
    """Mean negative log-likelihood per token (nats) over a whole stream, as training sees it:
    ``m`` rows with the state carried across windows. Returns (mean NLL, tokens). Runs the
    forward-only path (``Model.target_log_probs``): the same values as ``Model.loss``.
    With a ``reducer`` each process takes its share of the m rows and the sums are combined.
    ``on_window(log_probs, Y)``: each window's (T, m) target log-probabilities and targets,
    for a caller that wants more than the mean from the same pass (``eval``'s <UNK> figure)."""
    batches = Batches.from_stream(ids, m, T)
    n = batches.tokens
    if reducer is not None:
        batches = batches.rows(*reducer.share(m, "--eval-batch"))
    state = model.zero_state(batches.m)
    output = model.output_layer()                     # once per pass: the weights stay
    total = 0.0
    for k in range(len(batches)):
        X, Y = batches.window(k)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            # overflow gives inf/NaN, which is reported
            logp, state = model.target_log_probs(X, Y, state, output=output)
        total -= float(logp.sum())
        if on_window is not None:
            on_window(logp, Y)
        if on_progress is not None:
            on_progress(X.size)
    if reducer is not None:
        total = reducer.sum(total)
    return total / n, n
