"""The classifier against the same model in torch.nn (float64): nn.Embedding -> bidirectional
nn.LSTM over pack_padded_sequence -> pooled -> nn.Linear. Outputs and every gradient equal.

Layouts as in test_torch_reference: LSTM blocks charlm [u, f, o, c], torch [i, f, g, o];
bias_hh is zero so charlm's b is bias_ih; the reverse direction's weights are torch's
``*_reverse``.
"""

from __future__ import annotations

import numpy as np
import pytest

from charlm.nn.cells import lstm
from charlm.nn.model import Model, ModelConfig
from charlm.tasks import classify as C
from charlm.tasks.sentences import pad
from charlm.use.gradcheck import tiny_vocab

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

LSTM_ORDER = lstm.TORCH_ORDER   # the library's one map of the gate blocks
SEQS = [np.array(s) for s in ([2, 3, 4, 5, 6], [6, 2], [3], [4, 4, 6, 2])]
Y = np.array([0, 2, 1, 2])


def reorder(w, n, order=LSTM_ORDER):
    return np.concatenate([w[k * n:(k + 1) * n] for k in order])


def t64(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("pool", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_against_torch(bidirectional, pool, layers):
    n, K = 4, 3
    cfg = ModelConfig(cell="lstm", layers=layers, hidden=n, embed=3, dropout=0.0,
                      dtype="float64", task="classify", bidirectional=bidirectional, pool=pool)
    model = Model.create(cfg, tiny_vocab(7), np.random.default_rng(3), labels=["a", "b", "c"])
    P = model.params
    emb = torch.nn.Embedding(7, 3).double()
    lstm = torch.nn.LSTM(3, n, layers, bidirectional=bidirectional).double()
    lin = torch.nn.Linear(P["W_y"].shape[1], K).double()
    dirs = [("", ""), ("r", "_reverse")] if bidirectional else [("", "")]
    with torch.no_grad():
        emb.weight.copy_(t64(P["E"]))
        for l in range(layers):
            for ours, theirs in dirs:
                pre = f"L{l + 1}{ours}."
                getattr(lstm, f"weight_ih_l{l}{theirs}").copy_(t64(reorder(P[pre + "W_ax"], n)))
                getattr(lstm, f"weight_hh_l{l}{theirs}").copy_(t64(reorder(P[pre + "W_aa"], n)))
                getattr(lstm, f"bias_ih_l{l}{theirs}").copy_(t64(reorder(P[pre + "b"], n)))
                getattr(lstm, f"bias_hh_l{l}{theirs}").zero_()
        lin.weight.copy_(t64(P["W_y"]))
        lin.bias.copy_(t64(P["b_y"]))

    X, lengths = pad(SEQS)
    L, _, logits, cache = C.loss(model, X, lengths, Y)
    grads = C.backward(model, cache)

    packed = pack_padded_sequence(emb(torch.from_numpy(X)), torch.from_numpy(lengths),
                                  enforce_sorted=False)
    out, (h_n, _) = lstm(packed)
    h, _ = pad_packed_sequence(out)                         # (T, m, D), zeros at padding
    if pool == "last":
        p = torch.cat([h_n[-2], h_n[-1]], 1) if bidirectional else h_n[-1]
    elif pool == "mean":
        p = h.sum(0) / torch.from_numpy(lengths).double()[:, None]
    else:
        mask = torch.arange(h.shape[0])[:, None] < torch.from_numpy(lengths)[None, :]
        p = h.masked_fill(~mask[:, :, None], float("-inf")).max(0).values
    z = lin(p)
    loss = torch.nn.functional.cross_entropy(z, torch.from_numpy(Y))
    loss.backward()

    close = lambda a, b, what: np.testing.assert_allclose(  # noqa: E731
        a, b.detach().numpy(), rtol=1e-9, atol=1e-12, err_msg=what)
    close(logits, z, "logits")
    assert L == pytest.approx(loss.item(), rel=1e-12)
    close(grads["E"], emb.weight.grad, "E")
    close(grads["W_y"], lin.weight.grad, "W_y")
    close(grads["b_y"], lin.bias.grad, "b_y")
    for l in range(layers):
        for ours, theirs in dirs:
            pre = f"L{l + 1}{ours}."
            close(grads[pre + "W_ax"], torch.from_numpy(
                reorder(getattr(lstm, f"weight_ih_l{l}{theirs}").grad.numpy(), n)), pre + "W_ax")
            close(grads[pre + "W_aa"], torch.from_numpy(
                reorder(getattr(lstm, f"weight_hh_l{l}{theirs}").grad.numpy(), n)), pre + "W_aa")
            close(grads[pre + "b"], torch.from_numpy(
                reorder(getattr(lstm, f"bias_ih_l{l}{theirs}").grad.numpy(), n)), pre + "b")
