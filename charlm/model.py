"""The language model: embedding -> L recurrent layers -> softmax over the vocabulary.

Letters: ``T`` steps, ``m`` batch, ``V`` vocabulary size, ``n_e`` embedding size (0 = one-hot
inputs of size V), ``n_a`` hidden size, ``L`` layers.

The deep RNN of the course: layer l reads the hidden states of layer l-1,
``a[l]<t> = cell(a[l]<t-1>, a[l-1]<t>)`` with ``a[0]<t> = x<t>``, and the output is
``ŷ<t> = softmax(W_y a[L]<t> + b_y)``. Inverted dropout is applied to every layer's output
(between layers and before the softmax) while training only.

A model is a config plus a dict of named float arrays; gradients use the same keys:
``E`` (V, n_e), ``L1.W_aa``, ``L1.W_ax``, ``L1.b`` (and ``L1.p`` for peephole LSTMs), …,
``W_y`` (V, n_a), ``b_y`` (V,).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from .cells import CELLS
from .errors import ConfigError
from .layers import (dropout_mask, embed_backward, embed_forward, log_softmax, one_hot,
                     softmax_xent)
from .vocab import Vocab


@dataclass
class ModelConfig:
    """The shape of a model. Defaults are charlm's default model."""

    cell: str = "lstm"
    layers: int = 2
    hidden: int = 512
    embed: int = 64
    activation: str = "tanh"   # rnn only
    peephole: bool = False     # lstm only
    simplified: bool = False   # gru only
    dropout: float = 0.2
    dtype: str = "float32"

    def validate(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"Unknown cell {self.cell!r}. Use one of: {', '.join(CELLS)}.")
        for name in ("layers", "hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1 (got {getattr(self, name)}).")
        if self.embed < 0:
            raise ConfigError(f"--embed must be 0 (one-hot inputs) or more (got {self.embed}).")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1) (got {self.dropout}).")
        if self.activation not in ("tanh", "relu"):
            raise ConfigError(f"Unknown activation {self.activation!r}. Use 'tanh' or 'relu'.")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"Unknown dtype {self.dtype!r}. Use 'float32' or 'float64'.")
        if self.peephole and self.cell != "lstm":
            raise ConfigError("--peephole applies to the LSTM only. Add --cell lstm or drop it.")
        if self.simplified and self.cell != "gru":
            raise ConfigError("--simplified applies to the GRU only. Add --cell gru or drop it.")
        if self.activation != "tanh" and self.cell != "rnn":
            raise ConfigError("--activation applies to the basic RNN only. "
                              "Add --cell rnn or drop it.")

    @property
    def cell_opts(self) -> dict:
        return {"activation": self.activation, "peephole": self.peephole,
                "simplified": self.simplified}

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class Model:
    """A config, a vocabulary and the parameters; all computation is in pure functions."""

    def __init__(self, config: ModelConfig, vocab: Vocab, params: dict[str, np.ndarray]):
        self.config = config
        self.vocab = vocab
        self.params = params
        self.cell = CELLS[config.cell]
        self.dtype = np.dtype(config.dtype).type

    @classmethod
    def create(cls, config: ModelConfig, vocab: Vocab, rng: np.random.Generator) -> "Model":
        """Fresh parameters: N(0, 1) embedding, U(±1/sqrt(n)) for the rest."""
        config.validate()
        dt = np.dtype(config.dtype).type
        V, H = len(vocab), config.hidden
        params: dict[str, np.ndarray] = {}
        if config.embed:
            params["E"] = rng.standard_normal((V, config.embed)).astype(dt)
        n_x = config.embed or V
        cell = CELLS[config.cell]
        for l in range(1, config.layers + 1):
            for k, v in cell.init_params(n_x, H, rng, dt, **config.cell_opts).items():
                params[f"L{l}.{k}"] = v
            n_x = H
        k = 1.0 / np.sqrt(H)
        params["W_y"] = rng.uniform(-k, k, (V, H)).astype(dt)
        params["b_y"] = rng.uniform(-k, k, (V,)).astype(dt)
        return cls(config, vocab, params)

    @property
    def V(self) -> int:
        return len(self.vocab)

    def layer_params(self, l: int) -> dict[str, np.ndarray]:
        """The parameters of layer l under the cell's own names (W_aa, W_ax, b, …)."""
        prefix = f"L{l}."
        return {k[len(prefix):]: v for k, v in self.params.items() if k.startswith(prefix)}

    def n_params(self) -> int:
        return int(sum(v.size for v in self.params.values()))

    # ------------------------------------------------------------------ state
    def zero_state(self, m: int) -> list:
        """a<0> = 0 (and c<0> = 0 for the LSTM) for every layer, batch m."""
        z = lambda: np.zeros((m, self.config.hidden), dtype=self.dtype)  # noqa: E731
        if self.config.cell == "lstm":
            return [(z(), z()) for _ in range(self.config.layers)]
        return [z() for _ in range(self.config.layers)]

    # ---------------------------------------------------------------- forward
    def _inputs(self, X: np.ndarray) -> np.ndarray:
        if self.config.embed:
            return embed_forward(X, self.params["E"])
        return one_hot(X, self.V, self.dtype)

    def forward(self, X: np.ndarray, state: list, rng: np.random.Generator | None = None):
        """Run the network over ids X (T, m).

        ``rng`` turns dropout on (training); None is evaluation. Returns logits (T·m, V), the
        final state of every layer and the cache for :meth:`backward`.
        """
        opts = self.config.cell_opts
        p_drop = self.config.dropout if rng is not None else 0.0
        h = self._inputs(X)
        caches, masks, new_state = [], [], []
        for l in range(1, self.config.layers + 1):
            h, s, cache = self.cell.forward(h, state[l - 1], self.layer_params(l), **opts)
            caches.append(cache)
            new_state.append(s)
            mask = dropout_mask(h.shape, p_drop, rng, self.dtype) if p_drop > 0 else None
            if mask is not None:
                h = h * mask
            masks.append(mask)
        T, m, H = h.shape
        hf = h.reshape(T * m, H)
        logits = hf @ self.params["W_y"].T
        logits += self.params["b_y"]
        return logits, new_state, (X, caches, masks, hf)

    def loss(self, X: np.ndarray, Y: np.ndarray, state: list,
             rng: np.random.Generator | None = None, m_total: int | None = None):
        """L = Σ_t L<t> averaged over the batch, for ids X, targets Y (T, m).

        ``m_total``: the batch to average over when X holds only a share of it (data-parallel
        training: the shares' gradients then add up to the whole batch's); default m.
        Returns (L, summed NLL over all T·m targets, final state, cache for backward).
        """
        logits, new_state, cache = self.forward(X, state, rng)
        L, nll, dlogits = softmax_xent(logits, Y.reshape(-1).astype(np.intp),
                                       m_total or X.shape[1])
        return L, nll, new_state, (cache, dlogits)

    def backward(self, loss_cache) -> tuple[dict[str, np.ndarray], list]:
        """Backpropagation through the softmax, every layer and time step, and the embedding.

        Returns the gradients (same keys as ``params``) and the gradient of the initial state.
        """
        (X, caches, masks, hf), dlogits = loss_cache
        T, m = X.shape
        grads: dict[str, np.ndarray] = {}
        # logits = h W_y^T + b_y
        grads["W_y"] = dlogits.T @ hf
        grads["b_y"] = dlogits.sum(axis=0)
        dh = (dlogits @ self.params["W_y"]).reshape(T, m, -1)
        dstate = []
        opts = self.config.cell_opts
        for l in range(self.config.layers, 0, -1):
            if masks[l - 1] is not None:
                dh *= masks[l - 1]                       # through the dropout mask
            dh, ds, g = self.cell.backward(dh, caches[l - 1], self.layer_params(l), **opts)
            dstate.append(ds)
            for k, v in g.items():
                grads[f"L{l}.{k}"] = v
        if self.config.embed:
            grads["E"] = embed_backward(X, dh, self.V)  # x<t> = E^T o<t>
        return grads, dstate[::-1]

    # ------------------------------------------------- evaluation and sampling
    def log_probs(self, X: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """log ŷ<t> for every step: X (T, m) -> (T, m, V) log-probabilities, final state."""
        logits, new_state, _ = self.forward(X, state)
        T, m = X.shape
        return log_softmax(logits).reshape(T, m, -1), new_state

    def step(self, ids: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """One time step for ids (m,): logits (m, V) of the next token and the new state.
        Each call sets up a new :class:`Stepper` (about 60 µs for C1, more than the step
        itself); to run many steps, make one Stepper and call it, as the sampler does."""
        return Stepper(self)(ids, state)


class Stepper:
    """Runs a model one time step at a time (sampling, priming), with what every step reuses
    looked up once: each layer's parameters and, for the first layer, the input product
    ``W_ax x<t> + b`` of each token id met so far. Since x<t> is the one-hot vector o<t> (or
    its embedding E^T o<t>), that product is a fixed row per id: computed on first use, then
    looked up. Above the first layer it keeps a copy of each layer's stacked ``[W_ax | W_aa]``
    (see ``cells.stacked_weights``). Make a new Stepper after the parameters change."""

    def __init__(self, model: Model):
        self.model = model
        self.layers = [model.layer_params(l) for l in range(1, model.config.layers + 1)]
        self.opts = model.config.cell_opts
        self.rows: dict[int, np.ndarray] = {}
        # Above the first layer, [W_ax | W_aa] multiplies [h, a<t-1>] in one product
        # (None: the cell keeps its two products).
        self.stacked = [model.cell.step_weights(lp, **self.opts) for lp in self.layers[1:]]

    def _first_input(self, token: int) -> np.ndarray:
        row = self.rows.get(token)
        if row is None:
            m, lp = self.model, self.layers[0]
            # W_ax E^T o<t> is the product of the token's embedding row; W_ax o<t> is simply
            # column `token` of W_ax
            wx = m.params["E"][token] @ lp["W_ax"].T if m.config.embed else lp["W_ax"][:, token]
            row = self.rows[token] = wx + lp["b"]
        return row

    def __call__(self, ids, state: list) -> tuple[np.ndarray, list]:
        """ids (m,) -> logits (m, V), new state."""
        m = self.model
        if len(ids) == 1:                      # sampling: one token, no copy
            xz = self._first_input(int(ids[0]))[None]
        else:
            xz = np.stack([self._first_input(int(i)) for i in ids])
        h, s = m.cell.step(xz, state[0], self.layers[0], **self.opts)
        new_state = [s]
        for l in range(1, len(self.layers)):
            lp, prev, W = self.layers[l], state[l], self.stacked[l - 1]
            if W is None:
                xz = h @ lp["W_ax"].T
            else:
                a_prev = prev[0] if isinstance(prev, tuple) else prev   # the LSTM's is (a, c)
                xz = np.concatenate([h, a_prev], axis=1) @ W.T
            xz += lp["b"]
            h, s = m.cell.step(xz, prev, lp, stacked=W is not None, **self.opts)
            new_state.append(s)
        logits = h @ m.params["W_y"].T
        logits += m.params["b_y"]
        return logits, new_state
