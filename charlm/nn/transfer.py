"""A tagger's or classifier's encoder started from charlm's own language models
(``charlm train --task tag|classify --init-from LM.npz[,BACKWARD.npz]``).

Letters: ``V`` the new model's vocabulary, ``n_e`` its embedding size (0: one-hot inputs of
size V), ``n_a`` the hidden size, ``L`` layers, ``G n_a`` the rows of a cell's stacked gates.

What is copied from a language model of the same level, cell, ``n_a``, ``L`` and ``n_e``
(the head ``W_y``, ``b_y`` is always new, and so is everything not listed):

- the embedding ``E``, row by row, **matched by token**: the row of every token of the new
  vocabulary that the LM's vocabulary holds (``<EOS>`` and ``<UNK>`` included); the other
  rows keep their fresh initialisation. With one-hot inputs (``n_e = 0``) the same matching
  picks the columns of the first layer's ``W_ax`` instead;
- every layer of the LM into the forward direction, ``L{l}.*`` (``W_aa``, ``b``, a peephole
  LSTM's ``p``, and ``W_ax``). Where the new model's layer reads more than the LM's did, the
  LM's ``W_ax`` fills the columns the LM had and the others keep their initialisation: the
  first layer of a tagger with character words or LM features (their columns follow the
  embedding), and above the first layer of a bidirectional model the columns that read the
  backward direction (the LM's fill the forward half);
- with a second, backward LM (trained with ``charlm train --reverse``), every layer of it into
  the backward direction ``L{l}r.*`` the same way (above the first layer it fills the columns
  that read the backward half). Its first layer read the backward LM's own embedding, but the
  new model has one embedding, started from the forward LM; so its ``W_ax`` is **fitted**
  rather than copied: the least-squares ``W`` with ``W e_f(v) ≈ W_b e_b(v)`` over the tokens
  ``v`` that the new vocabulary and both LMs share (exact when there are at most n_e of them
  and their forward embeddings are independent). With one-hot inputs it is copied column by
  column, matched by token.

Then training fine-tunes everything. :func:`check_lm` refuses what cannot be copied.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .encoder import directions, prefix

SHAPE_KEYS = ("cell", "layers", "hidden", "embed", "activation", "peephole", "simplified")
"""The options an encoder must share with the LM it starts from."""


def check_lm(lm, reverse: bool, config, level: str, name: str, backward: bool = False) -> None:
    """A one-line ConfigError unless ``lm`` (a loaded Model; ``reverse``: trained with
    --reverse) is a language model of ``level`` whose layers fit ``config`` (the new model's):
    same cell, n_a, L and n_e. ``backward``: the LM must be a --reverse one (and the forward
    one must not)."""
    task = lm.config.task
    if task != "lm":
        raise ConfigError(f"{name} holds a {task} model, not a language model. --init-from "
                          "for --task tag or classify takes a file written by `charlm train` "
                          "(--task lm).")
    if lm.vocab.level != level:
        other = (f", or --level {lm.vocab.level}" if config.task != "tag"
                 else " (a tagger reads words)")
        raise ConfigError(f"{name} is a {lm.vocab.level}-level language model and this run "
                          f"reads {level} tokens. Give a {level}-level language model"
                          f"{other}.")
    if reverse != backward:
        raise ConfigError(
            f"{name} is a {'backward (--reverse)' if reverse else 'forward'} language model "
            f"but stands {'second' if backward else 'first'} in --init-from. Give the forward "
            "LM first and a backward one (trained with --reverse) second: "
            "--init-from FWD.npz,BWD.npz.")
    mine = {k: getattr(config, k) for k in SHAPE_KEYS}
    theirs = {k: getattr(lm.config, k) for k in SHAPE_KEYS}
    for k in SHAPE_KEYS:
        if mine[k] != theirs[k]:
            raise ConfigError(f"{name} has --{k} {theirs[k]} but this model --{k} {mine[k]}: "
                              f"its layers cannot be copied. Leave --{k} out (it then comes "
                              "from the language model).")


def matched_rows(vocab, lm_vocab) -> tuple[np.ndarray, np.ndarray]:
    """(ids in ``vocab``, ids in ``lm_vocab``) of the tokens both hold, in ``vocab``'s order."""
    pairs = [(i, lm_vocab.index[t]) for i, t in enumerate(vocab.tokens) if t in lm_vocab.index]
    mine, theirs = zip(*pairs) if pairs else ((), ())
    return np.array(mine, np.int64), np.array(theirs, np.int64)


def start_from_lms(model, forward, backward=None) -> dict:
    """Copy the LMs' embedding and layers into ``model``'s parameters in place (see the module
    docstring). Returns what was done: ``matched`` tokens of ``vocab`` tokens, ``copied`` and
    ``fitted`` parameter names."""
    p, cfg = model.params, model.config
    H, n_e = cfg.hidden, cfg.embed
    bidir = len(directions(cfg)) == 2
    mine, theirs = matched_rows(model.vocab, forward.vocab)
    copied, fitted = [], []

    def put(key, value, cols=None):
        dst = p[key]
        value = np.asarray(value, dtype=dst.dtype)
        if cols is None:
            dst[...] = value
        else:
            dst[:, cols] = value
        copied.append(key)

    if n_e:
        p["E"][mine] = forward.params["E"][theirs].astype(p["E"].dtype)
        copied.append("E")
    for lm, rev in ((forward, False), (backward, True)):
        if lm is None:
            continue
        for l in range(1, cfg.layers + 1):
            src, dst = prefix(l), prefix(l, rev)
            for k, v in lm.params.items():
                if not k.startswith(src):
                    continue
                name = dst + k[len(src):]
                if not k.endswith("W_ax"):
                    put(name, v)
                elif l > 1:          # reads the layer below: its forward or backward half
                    put(name, v, slice(H, 2 * H) if rev else slice(0, H) if bidir else None)
                elif not n_e:         # one-hot inputs: a column per token
                    m2, t2 = matched_rows(model.vocab, lm.vocab)
                    p[name][:, m2] = v[:, t2].astype(p[name].dtype)
                    copied.append(name)
                elif not rev:
                    put(name, v, slice(0, n_e))
                else:
                    p[name][:, :n_e] = fit_input_weights(model.vocab, forward, lm, v)
                    fitted.append(name)
    return {"matched": len(mine), "vocab": len(model.vocab), "copied": copied,
            "fitted": fitted}


def fit_input_weights(vocab, forward, backward, W_b: np.ndarray) -> np.ndarray:
    """The backward direction's first-layer input weights for the forward LM's embedding:
    argmin_W Σ_v ||W e_f(v) - W_b e_b(v)||² over the tokens of ``vocab`` that both LMs
    hold (minimum-norm least squares)."""
    shared = [t for t in vocab.tokens if t in forward.vocab.index and t in backward.vocab.index]
    if not shared:
        raise ConfigError("The two language models of --init-from share no token with this "
                          "run's vocabulary. Give language models of this kind of text.")
    E_f = forward.params["E"][[forward.vocab.index[t] for t in shared]].astype(np.float64)
    E_b = backward.params["E"][[backward.vocab.index[t] for t in shared]].astype(np.float64)
    target = E_b @ W_b.astype(np.float64).T               # (tokens, G n_a): W_b e_b(v)
    W_T, *_ = np.linalg.lstsq(E_f, target, rcond=None)    # (n_e, G n_a)
    return W_T.T.astype(W_b.dtype)
