"""Sampling novel sequences from a trained model.

As the course does it: start from ``a<0> = 0``, feed the start-of-sequence input, read the
softmax ŷ<t>, draw ``y<t>`` from it with the seeded generator's ``choice``, feed ``y<t>`` back
as ``x<t+1>``, and stop at ``<EOS>`` or at the length cap.

The start-of-sequence input is the ``<EOS>`` token: in the training stream every sequence
starts right after an ``<EOS>``, so that is the context the model has learned for "a new
sequence begins". ``<UNK>`` is rejected unless allowed: its probability is set to zero and
the rest renormalised, which is exactly the distribution of "draw again until it is not
``<UNK>``" without the retries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import CharlmError, ConfigError
from ..text.vocab import EOS_ID, UNK_ID
from .model import Model, Stepper


@dataclass
class Sample:
    ids: list[int] = field(default_factory=list)
    log_prob: float = 0.0   # natural log of P(ids) under the model (temperature 1, no filters)
    stopped_at_eos: bool = False


def check_options(temperature: float, top_k: int, top_p: float, length: int) -> None:
    if not np.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"--temperature must be 0 (greedy) or positive (got {temperature}).")
    if top_k < 0:
        raise ConfigError(f"--top-k must be 0 (off) or positive (got {top_k}).")
    if not (0.0 < top_p <= 1.0):
        raise ConfigError(f"--top-p must be in (0, 1] (got {top_p}).")
    if length < 1:
        raise ConfigError(f"--length must be at least 1 (got {length}).")


def next_distribution(logp: np.ndarray, temperature: float, top_k: int, top_p: float,
                      allow_unk: bool) -> np.ndarray:
    """The distribution to draw from, given the model's log-probabilities logp (V,), or the
    logits, or any other shift of them (the result does not depend on the shift):
    tempered (p ∝ ŷ^(1/temperature); 0 = greedy), <UNK> removed, cut to the top k and to the
    smallest set holding top_p of the probability, renormalised. Returns (V,) float64."""
    z = logp.copy()
    if not allow_unk:
        z[UNK_ID] = -np.inf
    if temperature == 0:
        p = np.zeros(len(logp))
        p[int(np.argmax(z))] = 1.0
        return p
    # Shifted by the largest allowed value, one entry is exp(0) = 1: the allowed tokens cannot
    # all underflow to 0, however likely <UNK> is and however low the temperature.
    z -= z.max()
    if temperature != 1:
        z /= temperature
    p = np.exp(z)
    if top_k and top_k < len(p):
        cut = np.partition(p, -top_k)[-top_k]
        p[p < cut] = 0.0
    if top_p < 1.0:
        p /= p.sum()
        order = np.argsort(-p, kind="stable")
        keep = np.cumsum(p[order]) - p[order] < top_p   # the smallest set reaching top_p
        p[order[~keep]] = 0.0
    p /= p.sum()
    return p


def draw(p: np.ndarray, rng: np.random.Generator) -> int:
    """One index drawn from the distribution p (V,): the first whose cumulative probability
    exceeds a uniform number. This is what ``rng.choice(V, p=p)`` does, and it takes the same
    number from the stream, but without choice's checks of p, which cost more than the draw
    itself (6 µs against 2.7 µs a token for V = 65, measured here)."""
    cdf = np.cumsum(p)
    if not (0.0 < cdf[-1] < math.inf):
        raise CharlmError("There is no distribution to draw from: the probabilities sum to "
                          f"{cdf[-1]}.")
    cdf /= cdf[-1]
    return int(cdf.searchsorted(rng.random(), side="right"))


def prime_state(step: Stepper, prime_ids: np.ndarray) -> tuple[list, int]:
    """Feed ``<EOS>`` and the prime through the model: the state and the last input id.

    ``<EOS>`` and all but the last prime token need no logits, so they go through in one
    forward-only pass (``Model.infer``, one call per layer) instead of a step per token: the
    same state, to round-off."""
    state = step.model.zero_state(1)
    if len(prime_ids) == 0:
        return state, EOS_ID
    X = np.concatenate([[EOS_ID], prime_ids[:-1]]).astype(np.int64).reshape(-1, 1)  # (T, 1)
    _, state = step.model.infer(X, state)
    return state, int(prime_ids[-1])


def sample(model: Model, rng: np.random.Generator, *, length: int = 200,
           temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           prime_ids: np.ndarray | None = None, allow_unk: bool = False,
           stop_at_eos: bool = True, min_length: int = 0,
           on_token: Callable[[int], None] | None = None) -> Sample:
    """Draw one sequence of at most ``length`` tokens (not counting the prime).

    ``min_length``: ``<EOS>`` cannot be drawn before this many tokens (its probability is
    set to zero and the rest renormalised, as for ``<UNK>``), so no sample is shorter unless
    ``length`` cuts it. ``Sample.log_prob`` stays the model's own probability of the tokens.
    """
    check_options(temperature, top_k, top_p, length)
    if min_length < 0 or min_length > length:
        raise ConfigError(f"--min-length must be between 0 and --length {length} "
                          f"(got {min_length}).")
    step = Stepper(model)
    state, x = prime_state(step, prime_ids if prime_ids is not None else np.zeros(0, int))
    out = Sample()
    for _ in range(length):
        logits, state = step((x,), state)
        z = logits[0].astype(np.float64)
        z_max = z.max()
        if not math.isfinite(z_max):
            raise CharlmError("The model's next-token probabilities are not finite (its "
                              "parameters overflow). Train it again with a lower --lr.")
        z -= z_max
        log_total = math.log(np.exp(z).sum())  # log ŷ = z - log_total
        if stop_at_eos and len(out.ids) < min_length:
            allowed = z.copy()
            allowed[EOS_ID] = -np.inf    # too short to end: <EOS> is not drawn
            p = next_distribution(allowed, temperature, top_k, top_p, allow_unk)
        else:
            p = next_distribution(z, temperature, top_k, top_p, allow_unk)
        y = draw(p, rng)
        out.log_prob += float(z[y]) - log_total
        if y == EOS_ID and stop_at_eos:
            out.stopped_at_eos = True
            break
        out.ids.append(y)
        if on_token is not None:
            on_token(y)
        x = y
    return out
