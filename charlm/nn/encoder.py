"""The layer stack every task shares: L recurrent layers, optionally bidirectional, over a
right-padded batch of whole sentences or over carried-state windows of a stream.

Letters: ``T`` steps, ``m`` batch, ``n_x`` input size, ``n_a`` hidden size, ``L`` layers,
``D`` the size of a layer's output: ``n_a``, or ``2 n_a`` for a bidirectional layer.

The deep RNN of the course: ``a[l]<t> = cell(a[l]<t-1>, a[l-1]<t>)`` with ``a[0]<t> = x<t>``.
A bidirectional layer (BRNN) runs a second cell of its own over the sentence backwards,

    a→[l]<t> = cell→(a→[l]<t-1>, a[l-1]<t>)        t = 1 … T_x
    a←[l]<t> = cell←(a←[l]<t+1>, a[l-1]<t>)        t = T_x … 1
    a[l]<t>  = [a→[l]<t>, a←[l]<t>]                (2 n_a)

so the next layer and the output ``ŷ<t> = g(W_y [a→<t>, a←<t>] + b_y)`` see both sides.

Variable lengths. Sentences are right-padded into ids of shape (T, m) with ``lengths`` (m,).
The forward direction runs the cell unchanged: the padding comes after a sentence's real steps,
so it cannot change them. The backward direction reverses each sentence *within its own
length* (one gather, :func:`reverse_index`; the padding stays at the end), runs the cell and
un-reverses, so it starts at each sentence's own last token, never at the padding. Outputs at
padded positions are zeroed, so they feed nothing and receive zero gradient; the cells'
backward passes then carry exactly zero through the padded steps (they come last in both
directions). A sentence's outputs, loss and gradients are therefore those of the sentence
alone, to round-off.

Parameters keep the language model's names for the forward direction (``L1.W_ax``,
``L1.W_aa``, ``L1.b``, …) and add ``L1r.*`` for the backward one. Inverted dropout follows
every layer (between layers and before the head) while training, as in the language model;
``input_dropout`` also drops units of the first layer's input x (the embedding, and any word
features beside it), each step's and each unit's independently.

Pure functions: :func:`forward` returns a cache that the caller hands back to
:func:`backward`; nothing is stored anywhere else. :func:`infer` is the forward-only pass
(no cache, no dropout) of every caller that needs no gradient: the same layer loop with each
cell's ``infer`` in place of its ``forward``.
"""

from __future__ import annotations

import numpy as np

from .cells import CELLS
from .layers import dropout_mask


def prefix(l: int, reverse: bool = False) -> str:
    """Parameter-name prefix of layer l (1-based): ``L1.`` forward, ``L1r.`` backward."""
    return f"L{l}r." if reverse else f"L{l}."


def directions(config) -> tuple[bool, ...]:
    return (False, True) if getattr(config, "bidirectional", False) else (False,)


def out_size(config) -> int:
    """D: the size of each layer's output, n_a or 2 n_a."""
    return config.hidden * len(directions(config))


def init_params(config, n_x: int, rng: np.random.Generator, dtype) -> dict[str, np.ndarray]:
    """Fresh parameters of every layer, drawn in the order L1, L1r, L2, L2r, …."""
    cell = CELLS[config.cell]
    params: dict[str, np.ndarray] = {}
    for l in range(1, config.layers + 1):
        for rev in directions(config):
            for k, v in cell.init_params(n_x, config.hidden, rng, dtype,
                                         **config.cell_opts).items():
                params[prefix(l, rev) + k] = v
        n_x = out_size(config)
    return params


def layer_params(params: dict, l: int, reverse: bool = False) -> dict[str, np.ndarray]:
    """The parameters of one direction of layer l under the cell's own names."""
    p = prefix(l, reverse)
    return {k[len(p):]: v for k, v in params.items() if k.startswith(p)}


def zero_state(config, m: int, dtype) -> list:
    """a<0> = 0 (and c<0> = 0 for the LSTM) for every layer, batch m (forward direction)."""
    z = lambda: np.zeros((m, config.hidden), dtype=dtype)  # noqa: E731
    if config.cell == "lstm":
        return [(z(), z()) for _ in range(config.layers)]
    return [z() for _ in range(config.layers)]


def length_mask(lengths: np.ndarray, T: int, dtype) -> np.ndarray:
    """(T, m, 1): 1 at a sentence's real steps, 0 at its padding."""
    return (np.arange(T)[:, None] < np.asarray(lengths)[None, :]).astype(dtype)[..., None]


def reverse_index(lengths: np.ndarray | None, T: int, m: int) -> np.ndarray:
    """(T, m) step indices that reverse each column within its own length:
    ``t -> length - 1 - t`` for real steps, padding left in place. Its own inverse."""
    t = np.arange(T)[:, None]
    n = np.full((1, m), T) if lengths is None else np.asarray(lengths)[None, :]
    return np.where(t < n, n - 1 - t, t)


def flip(h: np.ndarray, rev: np.ndarray) -> np.ndarray:
    """h (T, m, n) with every column reversed within its length (see :func:`reverse_index`)."""
    return h[rev, np.arange(h.shape[1])[None, :]]


def forward(params: dict, config, x: np.ndarray, state: list | None = None,
            lengths: np.ndarray | None = None, rng: np.random.Generator | None = None):
    """Run the L layers over inputs x (T, m, n_x).

    ``state``: the forward direction's initial state per layer (None: zeros); the backward
    direction always starts from zeros at each sentence's end. ``lengths`` (m,): real steps
    per column (None: all T). ``rng`` turns dropout on (training). Returns the top layer's
    output h (T, m, D), the forward direction's state after step T (meaningful without
    ``lengths``: the language model carries it to the next window) and the cache.
    """
    return _stack(params, config, x, state, lengths, rng, _cell_forward)


def infer(params: dict, config, x: np.ndarray, state: list | None = None,
          lengths: np.ndarray | None = None):
    """The forward-only pass (evaluation, tagging, classification): what :func:`forward`
    computes without ``rng``, but every layer runs its cell's ``infer``, which keeps no cache
    and allocates nothing per step. Returns h (T, m, D) and the forward direction's state
    after step T; nothing for :func:`backward`."""
    h, new_state, _ = _stack(params, config, x, state, lengths, None, _cell_infer)
    return h, new_state


def _cell_forward(cell, x, state, params, **opts):
    return cell.forward(x, state, params, **opts)


def _cell_infer(cell, x, state, params, **opts):
    a, s = cell.infer(x, state, params, **opts)
    return a, s, None


def _stack(params: dict, config, x: np.ndarray, state, lengths, rng, run):
    """The layer loop of :func:`forward` and :func:`infer`: ``run(cell, x, state, params,
    **opts) -> (a, state_T, cache)`` is the cell's training forward or its forward-only
    ``infer`` (cache None). Masks, the backward direction's flips and dropout are the same
    for both; with ``infer`` the caches are all None and there is no dropout (no rng)."""
    cell, opts = CELLS[config.cell], config.cell_opts
    T, m = x.shape[:2]
    dt = x.dtype.type
    p_drop = config.dropout if rng is not None else 0.0
    bidir = len(directions(config)) == 2
    mask = None if lengths is None else length_mask(lengths, T, dt)
    rev = reverse_index(lengths, T, m) if bidir else None
    if state is None:
        state = zero_state(config, m, dt)
    p_in = config.input_dropout if rng is not None else 0.0
    in_drop = dropout_mask(x.shape, p_in, rng, dt) if p_in > 0 else None
    h = x if in_drop is None else x * in_drop
    caches, drops, new_state = [], [], []
    for l in range(1, config.layers + 1):
        a, s, cache = run(cell, h, state[l - 1], layer_params(params, l), **opts)
        cache_r = None
        if bidir:
            a_r, _, cache_r = run(cell, flip(h, rev), zero_state(config, m, dt)[0],
                                  layer_params(params, l, True), **opts)
            a = np.concatenate([a, flip(a_r, rev)], axis=2)
        if mask is not None:
            a = a * mask                    # padded steps feed nothing (a copy: caches keep a)
        caches.append((cache, cache_r))
        new_state.append(s)
        drop = dropout_mask(a.shape, p_drop, rng, dt) if p_drop > 0 else None
        if drop is not None:
            a = a * drop
        drops.append(drop)
        h = a
    return h, new_state, (caches, drops, mask, rev, in_drop)


def backward(dh: np.ndarray, cache, params: dict, config, trace: dict | None = None):
    """Backpropagation through time through every layer and both directions.

    dh (T, m, D) = dL/dh of the top layer's output (may be modified in place). Returns
    dx (T, m, n_x), the gradient of the forward direction's initial state per layer, and the
    parameter gradients (same keys as ``params``). ``trace`` (``charlm.use.gradients`` only): the
    forward direction's cell of layer l records its per-step gradient of the hidden state in
    ``trace[l]`` (see the cells' ``backward``).
    """
    caches, drops, mask, rev, in_drop = cache
    cell, opts = CELLS[config.cell], config.cell_opts
    n = config.hidden
    grads: dict[str, np.ndarray] = {}
    dstate = []
    for l in range(config.layers, 0, -1):
        cache_f, cache_r = caches[l - 1]
        if drops[l - 1] is not None:
            dh *= drops[l - 1]                       # through the dropout mask
        if mask is not None:
            dh *= mask                               # padded outputs were zeroed
        rec = None if trace is None else trace.setdefault(l, [])
        if cache_r is None:
            dh, ds, g = cell.backward(dh, cache_f, layer_params(params, l), trace=rec, **opts)
        else:
            # a = [a→, flip(a←)]: split, and un-flip the backward half before its cell
            dx, ds, g = cell.backward(np.ascontiguousarray(dh[..., :n]), cache_f,
                                      layer_params(params, l), trace=rec, **opts)
            dx_r, _, g_r = cell.backward(flip(dh[..., n:], rev), cache_r,
                                         layer_params(params, l, True), **opts)
            dx += flip(dx_r, rev)
            dh = dx
            for k, v in g_r.items():
                grads[prefix(l, True) + k] = v
        dstate.append(ds)
        for k, v in g.items():
            grads[prefix(l) + k] = v
    if in_drop is not None:
        dh = dh * in_drop                            # dx through the input's mask
    return dh, dstate[::-1], grads
