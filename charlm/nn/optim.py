"""Optimizers and gradient clipping.

Each optimizer updates a dict of named arrays in place from gradients with the same keys, and
keeps its state (velocities, squared-gradient sums, moments) as named arrays too, so a
checkpoint can store and restore it exactly.

Clipping is a training step, applied to the gradients between ``backward`` and ``update``;
the loss and its gradient stay the plain mathematics (so gradient checks see them unclipped).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """sqrt(Σ ||g||²) over every gradient array."""
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))


def clip_gradients(grads: dict[str, np.ndarray], max_value: float, mode: str = "norm") -> float:
    """Clip in place against exploding gradients; returns the global norm before clipping.

    ``norm``: if the global norm exceeds ``max_value``, scale every gradient by
    ``max_value / norm`` (direction kept). ``value``: clip each element to
    ``[-max_value, max_value]``, as the course's ``clip`` function does. ``max_value`` 0: off.
    """
    norm = global_norm(grads)
    if max_value <= 0 or not math.isfinite(norm):
        return norm
    if mode == "norm":
        if norm > max_value:
            scale = max_value / norm
            for g in grads.values():
                g *= scale
    elif mode == "value":
        for g in grads.values():
            np.clip(g, -max_value, max_value, out=g)
    else:
        raise ConfigError(f"Unknown clip mode {mode!r}. Use 'norm' or 'value'.")
    return norm


class Optimizer:
    """Base: ``lr`` may be changed between steps (schedules); ``state`` holds named arrays."""

    slots: tuple[str, ...] = ()

    def __init__(self, lr: float):
        self.lr = lr
        self.t = 0
        self.state: dict[str, np.ndarray] = {}

    def _slot(self, slot: str, name: str, like: np.ndarray) -> np.ndarray:
        key = f"{slot}/{name}"
        if key not in self.state:
            self.state[key] = np.zeros_like(like)
        return self.state[key]

    def update(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        for name, g in grads.items():
            self._update(name, params[name], g)

    def _update(self, name: str, w: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """w -= lr * v, with v = μ v + g (μ = 0: plain gradient descent)."""

    def __init__(self, lr: float, momentum: float = 0.0):
        super().__init__(lr)
        self.momentum = momentum

    def _update(self, name, w, g):
        if self.momentum:
            v = self._slot("v", name, w)
            v *= self.momentum
            v += g
            g = v
        w -= self.lr * g


class Adagrad(Optimizer):
    """w -= lr * g / sqrt(Σ g² + eps), per element (min-char-rnn's optimizer)."""

    def __init__(self, lr: float, eps: float = 1e-8):
        super().__init__(lr)
        self.eps = eps

    def _update(self, name, w, g):
        s = self._slot("sq", name, w)
        s += g * g
        w -= self.lr * g / np.sqrt(s + self.eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias-corrected first and second moments."""

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _update(self, name, w, g):
        m = self._slot("m", name, w)
        v = self._slot("v", name, w)
        # Two scratch arrays per parameter, kept between steps (not in ``state``: they are no
        # part of a saved run): the update allocates nothing, which matters for a large word
        # embedding. The operations and their order are those of the plain formulas
        # m = β1 m + (1-β1) g, v = β2 v + (1-β2) g², w -= step m / (sqrt(v) + eps'),
        # so the result is the same to the last bit.
        a, b = self._scratch(name, w)
        m *= self.beta1
        np.multiply(g, 1.0 - self.beta1, out=a)
        m += a
        v *= self.beta2
        np.multiply(g, g, out=a)
        a *= 1.0 - self.beta2
        v += a
        step = self.lr * math.sqrt(1.0 - self.beta2 ** self.t) / (1.0 - self.beta1 ** self.t)
        np.sqrt(v, out=a)                                        # the denominator
        a += self.eps * math.sqrt(1.0 - self.beta2 ** self.t)
        np.multiply(m, step, out=b)
        b /= a
        w -= b

    def _scratch(self, name: str, like: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bufs = self.__dict__.setdefault("_bufs", {})
        pair = bufs.get(name)
        if pair is None or pair[0].shape != like.shape or pair[0].dtype != like.dtype:
            pair = bufs[name] = (np.empty_like(like), np.empty_like(like))
        return pair


OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "adam": Adam}


def make_optimizer(name: str, lr: float, momentum: float = 0.0) -> Optimizer:
    if name not in OPTIMIZERS:
        raise ConfigError(f"Unknown optimizer {name!r}. Use one of: {', '.join(OPTIMIZERS)}.")
    if name == "sgd":
        return SGD(lr, momentum)
    return OPTIMIZERS[name](lr)
