"""How fast could charlm's recurrent cells be if only their matrix products took time?

Times exactly the matrix products that one batch of a C1/C2/W1 model issues through NumPy,
with the shapes, memory layouts and BLAS threads charlm uses (the products are made by
charlm's own helpers where it has them: ``cells.input_product``, ``cells.transposed``,
``cells.weight_grads``, ``cells.recurrent_grad``), and nothing else: no element-wise gate
work, no softmax, no optimizer, no Python between them beyond a loop.

- eval (``cells.<cell>.infer``, ``Model.target_log_probs``): per layer the input product of
  all steps, then per step the recurrent product ``a<t-1> W_aaᵀ`` (m × n_a by n_a × G n_a;
  the full GRU makes two dependent ones, ``c<t-1>`` by its [u, r] rows, then ``Γr * c<t-1>``
  by its candidate rows); then the output layer ``[a, 1] [W_y | b_y]ᵀ``.
- train (``cells.<cell>.forward`` and ``backward``, ``Model.loss`` and ``backward``): the
  forward's products as above, the output layer and its two gradient products, and per layer
  the backward: per step ``dz<t> W_aa`` (the GRU: its two), then dx, dW_ax and dW_aa over all
  steps.

The batch's tokens divided by the median time of these products is a bound: charlm cannot
beat it without faster products. Set against PyTorch's tokens/s from the same sitting, it
says whether a ratio target is within reach of a NumPy core at all; what the whole pass takes
beyond it is the element-wise work, the softmax, the optimizer and Python.

    python bench/product_bound.py --config C1 --cell lstm --mode eval [--repeats 30] [--json]
    python bench/product_bound.py --mode train --hidden 512 --bptt 128 --vocab 66   # a recipe
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from charlm.nn.cells.common import input_product, recurrent_grad, transposed, weight_grads  # noqa: E402
from charlm.use.bench import CONFIGS, GATES  # noqa: E402


def products(cfg: dict, cell: str, mode: str, rng: np.random.Generator):
    """A function that issues one batch's products, and the batch's token count."""
    V, E, H, L, m, T = (cfg[k] for k in ("vocab", "embed", "hidden", "layers", "batch",
                                          "bptt"))
    G = GATES[cell]
    f32 = np.float32

    def rand(*shape):   # small values: nothing overflows, nothing is subnormal
        return (0.05 * rng.standard_normal(shape)).astype(f32)
    N = T * m
    widths = [E or V] + [H] * (L - 1)                # --embed 0: one-hot inputs
    W_ax = [rand(G * H, w) for w in widths]
    W_aa = rand(G * H, H)
    # the per-step weights as the cells lay them out: [W_aa] or, for the GRU, [u, r] and c
    step_W = [transposed(W_aa)] if cell != "gru" else [transposed(W_aa[: 2 * H]),
                                                        transposed(W_aa[2 * H:])]
    step_out = [np.empty((m, w.shape[1]), f32) for w in step_W]
    x = [rand(T, m, w) for w in widths]
    a = rand(m, H)
    hb = rand(N, H + 1)
    W_out = rand(H + 1, V)
    logits = np.empty((N, V), f32)

    def forward():
        for l in range(L):
            input_product(x[l], W_ax[l], None, G)            # the product, not the bias
            for _ in range(T):
                for W, r in zip(step_W, step_out):
                    np.matmul(a, W, out=r)

    def eval_batch():
        forward()
        np.matmul(hb, W_out, out=logits)

    W_y = rand(V, H)
    hf = rand(N, H)
    dz = [rand(G, T, m, H) for _ in range(L)]
    # backward's per-step products: the rows dz<t> (m, G n) by W_aa; the GRU's two
    back = [(rand(m, G * H), W_aa)] if cell != "gru" else [(rand(m, H), W_aa[2 * H:]),
                                                             (rand(m, 2 * H), W_aa[: 2 * H])]
    da = np.empty((m, H), f32)

    def train_batch():
        forward()
        np.matmul(hf, W_y.T, out=logits)                     # output layer and its gradients
        logits.T @ hf
        logits @ W_y
        for l in reversed(range(L)):                         # backward
            for _ in range(T):
                for rows, W in back:
                    np.matmul(rows, W, out=da)
            weight_grads(dz[l], x[l], W_ax[l])               # dx, dW_ax
            if cell == "gru":                                # dW_aa: [u, r] rows, then c's
                recurrent_grad(dz[l][:2], hf.reshape(T, m, H))
                recurrent_grad(dz[l][2:], hf.reshape(T, m, H))
            else:
                recurrent_grad(dz[l], hf.reshape(T, m, H))

    return (eval_batch if mode == "eval" else train_batch), N


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=["C1", "C2", "W1"], default="C1")
    p.add_argument("--cell", choices=sorted(GATES), default="lstm")
    p.add_argument("--mode", choices=["eval", "train"], default="eval")
    p.add_argument("--repeats", type=int, default=30)
    for k in ("vocab", "embed", "hidden", "layers", "batch", "bptt"):
        p.add_argument(f"--{k}", type=int, help=f"instead of the config's {k}")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    cfg = {k: v if getattr(args, k) is None else getattr(args, k)
           for k, v in CONFIGS[args.config].items()}
    fn, tokens = products(cfg, args.cell, args.mode, np.random.default_rng(0))
    for _ in range(3):
        fn()
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    med = float(np.median(times))
    changed = [f"{k}={cfg[k]}" for k in cfg if cfg[k] != CONFIGS[args.config][k]]
    name = args.config + (f" ({', '.join(changed)})" if changed else "")
    res = {"config": name, "cell": args.cell, "mode": args.mode,
           "products_ms_per_batch": med * 1e3, "bound_tokens_per_s": tokens / med}
    print(json.dumps(res) if args.json else
          f"{name} {args.cell} {args.mode}: products alone {med * 1e3:.2f} ms per batch "
          f"of {tokens} tokens -> at most {tokens / med:,.0f} tokens/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
