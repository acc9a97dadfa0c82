"""Shared helpers for the core tests (append new fixtures below; keep this file small)."""

from __future__ import annotations

import numpy as np
import pytest

from charlm.nn.model import Model, ModelConfig
from charlm.use.gradcheck import CELL_VARIANTS, tiny_vocab

# (cell, opts) of every cell variant, with readable test ids.
VARIANT_PARAMS = [pytest.param(cell, opts, id=label.replace(" ", "-"))
                  for cell, opts, label in CELL_VARIANTS]


def make_model(cell: str = "lstm", opts: dict | None = None, *, V: int = 7, hidden: int = 5,
               embed: int = 4, layers: int = 2, dropout: float = 0.0, dtype: str = "float64",
               seed: int = 0) -> Model:
    """A small model with seeded parameters over the vocabulary <EOS>, <UNK>, a, b, c, ..."""
    cfg = ModelConfig(cell=cell, layers=layers, hidden=hidden, embed=embed, dropout=dropout,
                      dtype=dtype, **(opts or {}))
    return Model.create(cfg, tiny_vocab(V), np.random.default_rng(seed))


def random_state(model: Model, m: int, rng: np.random.Generator) -> list:
    """A non-zero initial state of the same structure as ``model.zero_state(m)``."""
    out = []
    for s in model.zero_state(m):
        if isinstance(s, tuple):
            out.append(tuple(rng.standard_normal(x.shape).astype(x.dtype) for x in s))
        else:
            out.append(rng.standard_normal(s.shape).astype(s.dtype))
    return out


def flat_state(state) -> list[np.ndarray]:
    """The arrays of a model state (a list over layers of arrays or (a, c) tuples), in order."""
    out = []
    for s in state:
        out.extend(s if isinstance(s, tuple) else [s])
    return out
