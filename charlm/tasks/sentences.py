"""The task object the one trainer (:mod:`charlm.training.trainer`) trains, and what the
sentence tasks share. Each task supplies its batches, its loss and backward, and its validation
metric; the trainer keeps every guarantee (limits,
progress events, best-on-validation, ``--patience``, Ctrl-C, exact ``--resume``, atomic model
files, the divergence guard) for all of them.

Letters: ``T`` steps, ``m`` sentences in a batch, ``N`` sentences in a data set.

The contract (a task is any object with these members)::

    name: str                 "lm", "tag" or "classify" (ModelConfig.task)
    metric: str               the key of the validation record that decides the best model,
                              e.g. "valid_loss", "valid_f1", "valid_accuracy"
    higher_is_better: bool    that metric's direction (loss: False; F1, accuracy: True)
    batches: Sized            len(task.batches) = batches (training steps) per epoch
    train_tokens: int         size of the training data; saved, and checked on --resume
    tokens_per_epoch: int     tokens (targets) one epoch trains on, for progress
    has_validation: bool      False: every evaluation keeps the latest parameters

    start_epoch(model, epoch)            before batch 0 of every epoch (never on a resume in
                                         the middle of one): the LM resets its carried state
    loss(model, epoch, k, rng)           batch k of epoch `epoch` -> (L, nll, tokens, cache):
                                         L the differentiated loss Σ_t L<t> averaged over the
                                         batch, nll the summed negative log-likelihood of its
                                         `tokens` targets, cache for backward. The batch must
                                         be a pure function of (run seed, epoch, k): --resume
                                         then repeats it exactly. rng: dropout masks.
    backward(model, cache) -> grads      same keys as model.params
    accept(cache)                        the step was applied (the LM carries its state on)
    reject(model)                        the step was undone (non-finite loss or update)
    validate(model) -> dict              record entries, task.metric among them
    state_arrays() -> dict[str, array]   carried state to save in the model file ({} if none);
                                         the whole batch's, also over MPI (the LM gathers it)
    load_state_arrays(model, arrays)     put it back on --resume (KeyError if missing)
    progress_sample(model, rng) -> str   optional: a line to show at evaluations

Data-parallel training over MPI (a ``reducer``, see :mod:`charlm.training.trainer`) is the language
model's only so far: its task trains a share of each batch; the trainer refuses other tasks.

Sentence tasks (tag, classify) share :func:`epoch_batches` (seeded shuffling, bucketed by
length) and :func:`pad` (right padding with lengths); the model's ``forward(X, None, rng,
lengths)`` / ``encode(...)`` mask the padding (see :mod:`charlm.nn.encoder`), so a sentence's
loss and gradients do not depend on the batch it lands in.
"""

from __future__ import annotations

import numpy as np


def epoch_batches(lengths: np.ndarray, batch: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The batches of one epoch, as arrays of sentence indices.

    Shuffled with a Generator seeded from (seed, epoch), so an epoch's batches are a pure
    function of the run's seed and the epoch number (a resumed run gets the same ones).
    Sentences are shuffled, then stably sorted by length and cut into runs of ``batch``
    (similar lengths share a batch: little padding), and the order of those batches is
    shuffled again. lengths (N,) -> [indices (≤ batch,), ...].
    """
    rng = np.random.default_rng([seed, 7, epoch])
    perm = rng.permutation(len(lengths))
    order = perm[np.argsort(np.asarray(lengths)[perm], kind="stable")]
    groups = [order[i:i + batch] for i in range(0, len(order), batch)]
    return [groups[i] for i in rng.permutation(len(groups))]


def n_batches(n: int, batch: int) -> int:
    return -(-n // batch)


def pad(seqs: list[np.ndarray], dtype=np.int64, value: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad sequences into a time-major (T, m) array; returns it and lengths (m,)."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    T = int(lengths.max()) if len(seqs) else 0
    out = np.full((T, len(seqs)), value, dtype=dtype)
    for i, s in enumerate(seqs):
        out[:len(s), i] = s
    return out, lengths


class SentenceTask:
    """What the sentence tasks (tag, classify) share: each epoch's batches are whole sentences
    from :func:`epoch_batches` (made once per epoch, from ``lengths``, ``batch_size`` and
    ``seed``, which the task sets), and nothing is carried from one batch to the next, so
    there is nothing to accept, reject, save or restore."""

    lengths: np.ndarray
    batch_size: int
    seed: int
    _order: tuple[int, list[np.ndarray]] | None = None
    unit = "token"          # what the trainer's counts and losses are per
    samples = False         # progress shows no sample at evaluations

    def batch_indices(self, epoch: int, k: int) -> np.ndarray:
        """The sentence indices of batch k of ``epoch``."""
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, epoch_batches(self.lengths, self.batch_size, self.seed, epoch))
        return self._order[1][k]

    def start_epoch(self, model, epoch: int) -> None:
        pass

    def accept(self, cache) -> None:
        pass

    def reject(self, model) -> None:
        pass

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_arrays(self, model, arrays: dict[str, np.ndarray]) -> None:
        pass


class Range:
    """A Sized stand-in for a task's batches when only their number matters."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n
