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


def whole_and_resumed(common: list, task: str, tmp_path, steps: int = 6, first: int = 3):
    """``charlm train COMMON`` run straight through for ``steps`` steps (ref.npz), and for
    ``first`` steps then ``--resume``d for the rest (int.npz); the two paths, for a test to
    compare array by array."""
    from typer.testing import CliRunner

    from charlm.cli import app
    runner = CliRunner()
    for name, n in (("ref.npz", steps), ("int.npz", first)):
        r = runner.invoke(app, [*map(str, common), "--steps", str(n),
                                "--out", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["train", "--task", task, "--resume", "--steps", str(steps - first),
                            "--out", str(tmp_path / "int.npz")])
    assert r.exit_code == 0, r.output
    return tmp_path / "ref.npz", tmp_path / "int.npz"
