"""How fast could charlm's LSTM be if only its matrix products took time?

Times exactly the matrix products that one batch of the C1/C2/W1 LSTM issues through NumPy,
with the shapes, memory layouts and BLAS threads charlm uses, and nothing else (no
element-wise gate work, no softmax, no optimizer, no Python between them beyond a loop):

- eval: per layer the input product of all steps (``cells.lstm.infer``: W_ax x<t>ᵀ batched
  over the steps), then per step the recurrent product W_aa a<t-1>ᵀ (4 n_a × n_a by
  n_a × m); the output layer [a, 1] [W_y | b_y]ᵀ.
- train: the forward as ``cells.lstm.forward`` runs it (input product over all steps, then
  a<t-1> W_aaᵀ per step), the output layer, its two gradient products, and per layer the
  backward: per step dz<t> W_aa (m × 4 n_a by 4 n_a × n_a), then dx, dW_ax and dW_aa over
  all steps (``cells.weight_grads``, ``cells.recurrent_grad``).

The batch's tokens divided by the median time of these products is a bound: charlm cannot
beat it without faster products. Set against PyTorch's tokens/s from the same sitting, it
says whether a ratio target is within reach of a NumPy core at all.

    python bench/product_bound.py --config C1 --mode eval [--repeats 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from charlm.bench import CONFIGS  # noqa: E402


def products(cfg: dict, mode: str, rng: np.random.Generator):
    """A function that issues one batch's products, and the batch's token count."""
    V, E, H, L, m, T = (cfg[k] for k in ("vocab", "embed", "hidden", "layers", "batch",
                                          "bptt"))
    f32 = np.float32

    def rand(*shape):   # small values: nothing overflows, nothing is subnormal
        return (0.05 * rng.standard_normal(shape)).astype(f32)
    N = T * m
    widths = [E] + [H] * (L - 1)
    W_ax = [rand(4 * H, w) for w in widths]
    W_aa = rand(4 * H, H)
    W_aa_T = np.ascontiguousarray(W_aa.T)
    x = [rand(T, m, w) for w in widths]
    aT = rand(H, m)
    a = rand(m, H)
    r_fm = np.empty((4 * H, m), f32)
    r = np.empty((m, 4 * H), f32)
    hb = rand(N, H + 1)
    W_out = rand(H + 1, V)
    logits = np.empty((N, V), f32)

    def eval_batch():
        for l in range(L):
            np.matmul(W_ax[l], x[l].transpose(0, 2, 1))
            for _ in range(T):
                np.matmul(W_aa, aT, out=r_fm)
        np.matmul(hb, W_out, out=logits)

    W_y = rand(V, H)
    hf = rand(N, H)
    dz = [rand(4, T, m, H) for _ in range(L)]
    rows = rand(m, 4 * H)
    da = np.empty((m, H), f32)

    def train_batch():
        for l in range(L):                                   # forward
            np.matmul(x[l].reshape(N, -1), W_ax[l].reshape(4, H, -1).transpose(0, 2, 1))
            for _ in range(T):
                np.matmul(a, W_aa_T, out=r)
        np.matmul(hf, W_y.T, out=logits)                     # output layer and its gradients
        logits.T @ hf
        logits @ W_y
        for l in reversed(range(L)):                         # backward
            for _ in range(T):
                np.matmul(rows, W_aa, out=da)
            d2 = dz[l].reshape(4, N, H)
            W = W_ax[l].reshape(4, H, -1)
            for k in range(4):
                d2[k] @ W[k]                                 # dx
            np.matmul(d2.transpose(0, 2, 1), x[l].reshape(N, -1))          # dW_ax
            np.matmul(d2.transpose(0, 2, 1), hf)                             # dW_aa

    return (eval_batch if mode == "eval" else train_batch), N


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=["C1", "C2", "W1"], default="C1")
    p.add_argument("--mode", choices=["eval", "train"], default="eval")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    fn, tokens = products(CONFIGS[args.config], args.mode, np.random.default_rng(0))
    for _ in range(3):
        fn()
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    med = float(np.median(times))
    res = {"config": args.config, "cell": "lstm", "mode": args.mode,
           "products_ms_per_batch": med * 1e3, "bound_tokens_per_s": tokens / med}
    print(json.dumps(res) if args.json else
          f"{args.config} lstm {args.mode}: products alone {med * 1e3:.2f} ms per batch of "
          f"{tokens} tokens -> at most {tokens / med:,.0f} tokens/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
