"""Pooling over the real steps: gradient checks in float64, and padding that changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from charlm.nn.pooling import pool_backward, pool_forward
from charlm.use.gradcheck import TOLERANCE, numerical_grad, rel_error


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", ["last", "mean", "max"])
def test_pool_gradient(mode, bidirectional):
    rng = np.random.default_rng(5)
    T, m, D = 5, 4, 6
    lengths = np.array([5, 1, 3, 2])
    h = rng.standard_normal((T, m, D))
    R = rng.standard_normal((m, D))
    f = lambda: float((pool_forward(h, lengths, mode, bidirectional)[0] * R).sum())  # noqa
    _, cache = pool_forward(h, lengths, mode, bidirectional)
    dh = pool_backward(R, cache)
    assert rel_error(dh, numerical_grad(f, h)) < TOLERANCE
    pad = np.arange(T)[:, None] >= lengths[None, :]
    assert not dh[pad].any()                                 # nothing flows into padding


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", ["last", "mean", "max"])
def test_padding_changes_nothing(mode, bidirectional):
    rng = np.random.default_rng(6)
    T, D = 6, 4
    lengths = np.array([6, 2, 4])
    h = rng.standard_normal((T, 3, D))
    p, _ = pool_forward(h, lengths, mode, bidirectional)
    for i, n in enumerate(lengths):
        alone, _ = pool_forward(h[:n, i:i + 1], np.array([n]), mode, bidirectional)
        np.testing.assert_allclose(p[i], alone[0], rtol=0, atol=1e-15)
    noisy = h.copy()
    noisy[np.arange(T)[:, None] >= lengths[None, :]] = 1e3   # padding full of large values
    np.testing.assert_allclose(pool_forward(noisy, lengths, mode, bidirectional)[0], p,
                               atol=1e-12)


def test_last_hand_values():
    # one sequence of 3 real steps in a T=4 batch; D=4 is [forward 2 | backward 2]
    h = np.arange(16, dtype=float).reshape(4, 1, 4)
    p, _ = pool_forward(h, np.array([3]), "last", bidirectional=True)
    assert p.tolist() == [[8.0, 9.0, 2.0, 3.0]]             # a→<3> and a←<1>
    p, _ = pool_forward(h, np.array([3]), "last")
    assert p.tolist() == [[8.0, 9.0, 10.0, 11.0]]
    p, _ = pool_forward(h, np.array([3]), "mean")
    assert p.tolist() == [[4.0, 5.0, 6.0, 7.0]]
