"""The model of every task: embedding -> L recurrent layers -> softmax over K outputs.

Letters: ``T`` steps, ``m`` batch, ``V`` vocabulary size, ``n_e`` embedding size (0 = one-hot
inputs of size V), ``n_a`` hidden size, ``L`` layers, ``D`` the top layer's output size
(``n_a``, or ``2 n_a`` bidirectional), ``K`` outputs: V for the language model (``task``
"lm"), the number of labels for a tagger ("tag") or a classifier ("classify").

The deep RNN of the course: layer l reads the hidden states of layer l-1,
``a[l]<t> = cell(a[l]<t-1>, a[l-1]<t>)`` with ``a[0]<t> = x<t>``, and the output is
``ŷ<t> = softmax(W_y a[L]<t> + b_y)``. Inverted dropout is applied to every layer's output
(between layers and before the softmax) while training only. The layer stack, with its
optional reverse direction and padding masks, is :mod:`charlm.nn.encoder`.

A model is a config plus a dict of named float arrays; gradients use the same keys:
``E`` (V, n_e), ``L1.W_aa``, ``L1.W_ax``, ``L1.b`` (and ``L1.p`` for peephole LSTMs), …,
``W_y`` (K, D), ``b_y`` (K,); a bidirectional layer adds ``L1r.*`` for its backward direction.

Tied embeddings (``tie_weights``, language models only; Press & Wolf 2017, Inan et al. 2017):
the output layer's weights are the embedding, ``W_y = E`` (so n_e = n_a), and there is no
``W_y`` among the parameters. E is then used twice, ``x<t> = E^T o<t>`` and
``z<t> = E a[L]<t> + b_y``, and its gradient is the sum of both uses' gradients.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..errors import ConfigError
from ..text.vocab import Vocab
from . import charwords, encoder
from .cells import CELLS, transposed
from .layers import (
    embed_backward,
    embed_forward,
    log_softmax,
    one_hot,
    softmax_xent,
    target_log_probs,
)


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
    input_dropout: float = 0.0  # dropout on the first layer's input (embedding, word features)
    dtype: str = "float32"
    task: str = "lm"           # lm | tag | classify
    bidirectional: bool = False  # tag and classify only
    pool: str = "last"         # classify only: last | mean | max
    char_embed: int = 0        # tag only: character embedding of the word BRNN (0 = off)
    char_hidden: int = 0       # tag only: its hidden size n_c; r(w) has 2 n_c
    lm_features: int = 0       # tag, classify: n_f, the frozen character LMs' features per word
    tie_weights: bool = False  # lm only: W_y = E (the embedding is the output layer's weights)

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
        if not 0.0 <= self.input_dropout < 1.0:
            raise ConfigError(f"--input-dropout must be in [0, 1) (got {self.input_dropout}).")
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
        if self.task not in TASKS:
            raise ConfigError(f"Unknown task {self.task!r}. Use one of: {', '.join(TASKS)}.")
        if self.bidirectional and self.task == "lm":
            raise ConfigError("A language model cannot be bidirectional: its backward direction "
                              "would read the very token it must predict. Drop "
                              "--bidirectional, or use --task tag or --task classify.")
        if self.pool not in ("last", "mean", "max"):
            raise ConfigError(f"Unknown pooling {self.pool!r}. Use last, mean or max.")
        if self.pool != "last" and self.task != "classify":
            raise ConfigError("--pool applies to --task classify only. Drop it.")
        if min(self.char_embed, self.char_hidden, self.lm_features) < 0:
            raise ConfigError("--char-embed, --char-hidden and the LM feature size must be 0 "
                              "(off) or more.")
        if bool(self.char_embed) != bool(self.char_hidden):
            raise ConfigError("Character words need both --char-embed and --char-hidden "
                              f"(got {self.char_embed} and {self.char_hidden}). Give both, or "
                              "neither.")
        if self.char_hidden and self.task != "tag":
            raise ConfigError("--char-embed and --char-hidden apply to --task tag only. "
                              "Drop them.")
        if self.lm_features and self.task == "lm":
            raise ConfigError("--lm-features applies to --task tag and --task classify. "
                              "Drop it.")
        if self.tie_weights:
            if self.task != "lm":
                raise ConfigError("--tie-weights makes the embedding the output layer of a "
                                  "language model; a tagger's or classifier's outputs are "
                                  "labels, not tokens. Drop --tie-weights.")
            if self.embed != self.hidden:
                raise ConfigError(f"--tie-weights uses the embedding as the output layer's "
                                  f"weights, so --embed must equal --hidden (got --embed "
                                  f"{self.embed}, --hidden {self.hidden}). Give --embed "
                                  f"{self.hidden}, or drop --tie-weights.")

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


TASKS = ("lm", "tag", "classify")


def input_size(config: ModelConfig, V: int) -> int:
    """n_x of the first layer: the embedding (or one-hot) size, plus 2 n_c for the character
    words and n_f for the LM features of a tagger (see :mod:`charlm.nn.charwords`)."""
    return (config.embed or V) + 2 * config.char_hidden + config.lm_features


class Model:
    """A config, a vocabulary, the parameters and (tag, classify) the output labels; all
    computation is in pure functions."""

    def __init__(self, config: ModelConfig, vocab: Vocab, params: dict[str, np.ndarray],
                 labels: list[str] | None = None, features=None):
        self.config = config
        self.features = features    # a tagger's WordFeatures (characters, LMs), or None
        self.vocab = vocab
        self.params = params
        self.labels = list(labels) if labels is not None else None
        self.cell = CELLS[config.cell]
        self.dtype = np.dtype(config.dtype).type

    @property
    def W_y(self) -> np.ndarray:
        """The output layer's weights (K, D): ``E`` itself when the weights are tied."""
        return self.params["E" if self.config.tie_weights else "W_y"]

    @classmethod
    def create(cls, config: ModelConfig, vocab: Vocab, rng: np.random.Generator,
               labels: list[str] | None = None, features=None) -> "Model":
        """Fresh parameters: N(0, 1) embedding, U(±1/sqrt(n)) for the rest. ``labels``: the
        outputs of a tagger or classifier (a language model's outputs are its vocabulary).
        ``features``: a tagger's :class:`~charlm.nn.charwords.WordFeatures` (its ``C.*``
        parameters are drawn last, so a word-only model is the same with or without).
        Tied weights: E is drawn as W_y would be, U(±1/sqrt(n_a)) (N(0, 1) rows as output
        weights would start with logits of about ±sqrt(n_a) |a|), and no W_y is drawn."""
        config.validate()
        if (labels is None) != (config.task == "lm"):
            raise ConfigError(f"A {config.task} model needs its label list (and only it does).")
        dt = np.dtype(config.dtype).type
        V, H = len(vocab), config.hidden
        K = V if labels is None else len(labels)
        params: dict[str, np.ndarray] = {}
        k = 1.0 / np.sqrt(H)
        if config.tie_weights:
            params["E"] = rng.uniform(-k, k, (V, config.embed)).astype(dt)
        elif config.embed:
            params["E"] = rng.standard_normal((V, config.embed)).astype(dt)
        params.update(encoder.init_params(config, input_size(config, V), rng, dt))
        D = encoder.out_size(config)
        if not config.tie_weights:
            params["W_y"] = rng.uniform(-k, k, (K, D)).astype(dt)
        params["b_y"] = rng.uniform(-k, k, (K,)).astype(dt)
        if config.char_hidden or config.lm_features:
            if features is None or (features.chars is None) != (not config.char_hidden) \
                    or features.lm_size != config.lm_features:
                raise ConfigError("A tagger with character words or LM features needs their "
                                  "WordFeatures (see charlm.nn.charwords).")
            if config.char_hidden:
                params.update(charwords.init_char_params(config, len(features.chars), rng, dt))
        return cls(config, vocab, params, labels, features)

    @property
    def V(self) -> int:
        return len(self.vocab)

    @property
    def K(self) -> int:
        """Number of outputs: V for a language model, else the number of labels."""
        return self.V if self.labels is None else len(self.labels)

    def layer_params(self, l: int, reverse: bool = False) -> dict[str, np.ndarray]:
        """The parameters of layer l under the cell's own names (W_aa, W_ax, b, …)."""
        return encoder.layer_params(self.params, l, reverse)

    def n_params(self) -> int:
        return int(sum(v.size for v in self.params.values()))

    # ------------------------------------------------------------------ state
    def zero_state(self, m: int) -> list:
        """a<0> = 0 (and c<0> = 0 for the LSTM) for every layer, batch m."""
        return encoder.zero_state(self.config, m, self.dtype)

    # ---------------------------------------------------------------- forward
    def _inputs(self, X: np.ndarray) -> np.ndarray:
        if self.config.embed:
            return embed_forward(X, self.params["E"])
        return one_hot(X, self.V, self.dtype)

    def encode(self, X: np.ndarray, state: list | None = None,
               lengths: np.ndarray | None = None, rng: np.random.Generator | None = None,
               words=None):
        """Embedding and the layer stack over ids X (T, m): h (T, m, D), the final state of
        every layer and the cache for :meth:`encode_backward`. ``lengths`` (m,) masks padded
        batches of whole sentences (see :mod:`charlm.nn.encoder`); ``rng`` turns dropout on.
        ``words``: a tagger's :class:`~charlm.nn.charwords.WordBatch` for the same sentences,
        whose columns (character words, LM features) follow the embedding in x<t>."""
        x, wcache = self._encoder_inputs(X, lengths, words, train=True)
        h, new_state, cache = encoder.forward(self.params, self.config, x, state, lengths, rng)
        return h, new_state, (X, cache, wcache)

    def encode_infer(self, X: np.ndarray, state: list | None = None,
                     lengths: np.ndarray | None = None, words=None):
        """:meth:`encode` on the forward-only path (tagging, classification, evaluation):
        h (T, m, D) and the final state of every layer, no dropout, no cache. The layers and
        the character words run :func:`charlm.nn.encoder.infer`."""
        x, _ = self._encoder_inputs(X, lengths, words, train=False)
        return encoder.infer(self.params, self.config, x, state, lengths)

    def _encoder_inputs(self, X: np.ndarray, lengths, words, train: bool):
        """x<t> of the first layer: the embedding, then a tagger's word columns; and the
        word columns' cache (None without ``words`` or without ``train``)."""
        x, wcache = self._inputs(X), None
        if words is not None:
            extra, wcache = charwords.word_inputs(self.params, self.config, words, lengths,
                                                 train)
            x = np.concatenate([x, extra.astype(x.dtype, copy=False)], axis=2)
        return x, wcache

    def encode_backward(self, dh: np.ndarray, cache, grads: dict | None = None,
                        trace: dict | None = None):
        """dh (T, m, D) -> gradients of the layers and the embedding (added to ``grads``),
        and the gradient of the initial state."""
        X, enc_cache, wcache = cache
        grads = {} if grads is None else grads
        dx, dstate, g = encoder.backward(dh, enc_cache, self.params, self.config, trace)
        grads.update(g)
        n_x = self.config.embed or self.V
        if wcache is not None:
            grads.update(charwords.word_inputs_backward(dx[..., n_x:], wcache, self.params,
                                                       self.config))
        if self.config.embed:
            grads["E"] = embed_backward(X, dx[..., :n_x], self.V)  # x<t> = E^T o<t>
        return grads, dstate

    def forward(self, X: np.ndarray, state: list | None, rng: np.random.Generator | None = None,
                lengths: np.ndarray | None = None, words=None):
        """Run the network over ids X (T, m) (and a tagger's ``words``, see :meth:`encode`).

        ``rng`` turns dropout on (training); None is evaluation. Returns logits (T·m, K), the
        final state of every layer and the cache for :meth:`backward`.
        """
        h, new_state, cache = self.encode(X, state, lengths, rng, words)
        T, m, D = h.shape
        hf = h.reshape(T * m, D)
        return self.output(hf), new_state, (cache, hf)

    def output(self, hf: np.ndarray) -> np.ndarray:
        """The logits ``z = W_y a + b_y`` of hidden states hf (N, D): (N, K)."""
        logits = hf @ self.W_y.T
        logits += self.params["b_y"]
        return logits

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

    def backward(self, loss_cache,
                 trace: dict | None = None) -> tuple[dict[str, np.ndarray], list]:
        """Backpropagation through the softmax, every layer and time step, and the embedding.

        Returns the gradients (same keys as ``params``) and the gradient of the initial state.
        ``trace`` (a dict, ``charlm.use.gradients`` only): each layer l's cell records its per-step
        gradient of the hidden state in ``trace[l]`` (see the cells' ``backward``).
        """
        (cache, hf), dlogits = loss_cache
        T, m = cache[0].shape
        grads: dict[str, np.ndarray] = {}
        tied = self.config.tie_weights
        # logits = h W_y^T + b_y
        if not tied:
            grads["W_y"] = dlogits.T @ hf
        grads["b_y"] = dlogits.sum(axis=0)
        dh = (dlogits @ self.W_y).reshape(T, m, -1)
        grads, dstate = self.encode_backward(dh, cache, grads, trace)
        if tied:   # W_y = E: E's gradient is its input use's (x<t> = E^T o<t>) plus this one
            grads["E"] += dlogits.T @ hf
        return grads, dstate

    # ------------------------------------------------- evaluation and sampling
    def infer(self, X: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """The forward-only pass (evaluation, no dropout, no cache): the last layer's hidden
        states for ids X (T, m) -> (T, m, n_a), and the final state of every layer. Each layer
        runs its cell's ``infer``, which gives what ``forward`` gives, to round-off (the
        encoder's forward-only pass, :func:`charlm.nn.encoder.infer`, without lengths)."""
        return encoder.infer(self.params, self.config, self._inputs(X), state)

    def output_layer(self) -> tuple[np.ndarray, float]:
        """The output layer as the forward-only path runs it: [W_y | b_y]^T (n_a + 1, V), the
        bias riding in the product as one more row (a pass over the logits less), and the
        largest norm of its columns, which bounds the logits (see :meth:`target_log_probs`).
        A copy of W_y: made once per evaluation or scoring pass, not per window; valid until
        the parameters change."""
        W_y = self.W_y
        H = W_y.shape[1]
        W = np.empty((H + 1, self.V), dtype=W_y.dtype)
        W[:H] = W_y.T
        W[H] = self.params["b_y"]
        sq = np.einsum("ij,ij->i", W_y, W_y)
        sq += self.params["b_y"] * self.params["b_y"]
        return W, float(np.sqrt(sq.max())) * (1.0 + 1e-5)   # the margin: float32 sums

    def target_log_probs(self, X: np.ndarray, Y: np.ndarray, state: list,
                         rows: int = 0, output=None) -> tuple[np.ndarray, list]:
        """log ŷ<t>[y<t>] of targets Y (T, m) given ids X (T, m): (T, m) float64, final state.

        What scoring and evaluation need, on the forward-only path: each position gives only
        logsumexp and one gathered logit, never a full log-softmax array. The output layer
        runs ``rows`` positions at a time (0: blocks of logits up to 16 MB, at least 256 rows),
        so that scoring large batches over a large vocabulary stays within bounded memory;
        smaller blocks, which would stay in cache, made W1's output stage slower (blocks of
        32 rows: 3.6x the time of all 700 rows at once, minima of 12 runs on a busy 2-core
        machine, 2026-11-28). ``output``: :meth:`output_layer`, for a caller that runs many
        windows with the same parameters (None: made here).
        """
        h, new_state = self.infer(X, state)
        T, m, H = h.shape
        N, V = T * m, self.V
        y = Y.reshape(-1).astype(np.intp)
        W, w_norm = output or self.output_layer()
        # |z| <= ||[a, 1]|| max_j ||[W_y, b_y]_j|| (Cauchy-Schwarz). Where that bound keeps
        # V e^|z| below the dtype's largest number, exp(z) can neither overflow nor lose the
        # row's largest terms, and logsumexp needs no shift by the row's max: two passes over
        # the block less. Otherwise (a diverging model, huge logits) the shifted form.
        safe = math.log(np.finfo(h.dtype).max) - math.log(V) - 1.0
        rows = rows or max(256, (1 << 22) // V)
        hb = np.empty((min(rows, N), H + 1), dtype=h.dtype)
        hb[:, H] = 1.0
        block = np.empty((min(rows, N), V), dtype=h.dtype)
        out = np.empty(N, dtype=np.float64)
        hf = h.reshape(N, H)
        for i in range(0, N, rows):
            j = min(i + rows, N)
            a = hb[: j - i]
            a[:, :H] = hf[i:j]
            bound = w_norm * math.sqrt(float(np.einsum("ij,ij->i", a, a).max()))
            logits = np.matmul(a, W, out=block[: j - i])           # z = W_y a + b_y
            out[i:j] = target_log_probs(logits, y[i:j], shift=not bound < safe)
        return out.reshape(T, m), new_state

    def log_probs(self, X: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """log ŷ<t> for every step: X (T, m) -> (T, m, V) log-probabilities, final state."""
        h, new_state = self.infer(X, state)
        T, m, H = h.shape
        logits = h.reshape(T * m, H) @ transposed(self.W_y)
        logits += self.params["b_y"]
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
    (see ``cells.common.stacked_weights``). Make a new Stepper after the parameters change."""

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
        logits = h @ m.W_y.T
        logits += m.params["b_y"]
        return logits, new_state
