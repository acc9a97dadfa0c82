#!/usr/bin/env python3
"""charlm's LSTM language model and the PyTorch reference, trained side by side from the same
weights on the same windows, step by step.

Why: charlm's LM trained with Adam ends a fixed-time run a little worse per token than
``../shared/bench/torch_quality.py`` on the same recipe. This script tells seed noise from a real
difference in the training procedure by removing the noise: one initialisation, one data
stream, no dropout (by default), and a comparison after every step.

What it does
  * charlm side: the corpus through ``charlm.training.trainer.prepare_corpus`` (vocabulary from the
    training part, the last ``--valid-fraction`` set aside), a ``Model.create`` LSTM LM in
    float32, and a real ``charlm.training.trainer.Trainer`` whose ``train_step`` makes every step:
    ``Model.loss`` (Σ_t L<t> averaged over the batch), ``Model.backward``,
    ``optim.clip_gradients`` (here wrapped only to record the norm it returns), the undo
    snapshot, ``Adam.update``, the carried state; the state is reset at every epoch
    (``task.start_epoch``) as ``Trainer.run_loop`` does.
  * PyTorch side: the module of torch_quality.py (Embedding -> LSTM -> Dropout -> Linear),
    float32, mean cross-entropy, ``clip_grad_norm_``, ``torch.optim.Adam`` with its defaults,
    the state detached between windows and zeroed at each epoch.
  * Shared: charlm's initial parameters copied into the torch module (gate blocks reordered:
    charlm [u, f, o, c] -> torch [i, f, g, o]; charlm's single bias into ``bias_ih``,
    ``bias_hh`` zero) and charlm's windows (``data.Batches``: X, Y of every step) fed to both.
  * Clipping: charlm's loss is T times torch's mean, so ``--clip-torch C`` gives charlm
    ``--clip C * bptt`` (the same clip); ``--clip-charlm`` overrides that, to try charlm's
    own default (5 on the summed loss, i.e. 5 / bptt on the mean) against torch's 5.
  * ``--torch-bias both`` (default) trains ``bias_ih`` and ``bias_hh`` as nn.LSTM and
    torch_quality.py do; ``ih`` freezes ``bias_hh`` at zero, the exact counterpart of charlm's
    one bias. (Both biases get the same gradient, and Adam moves each by about lr, so the
    effective bias b_ih + b_hh moves about twice as far per step as charlm's b.)
  * Adam's eps: charlm's Adam (eps 1e-8, ``optim.Adam``) sees a gradient T times torch's, so
    it behaves as torch's Adam with eps 1e-8 / T. Where an element's gradient is not far above
    1e-8 (a fresh LSTM's recurrent weights have many below 1e-6) the steps differ; ``--match-eps``
    gives torch eps 1e-8 / bptt, which removes that difference.
  * ``--init own`` leaves torch its default initialisation (seeded with --seed) instead of
    charlm's weights: the comparison the fixed-time runs make. Parameter figures are then
    meaningless and are left out.

Per step it prints: both losses (nats per token; charlm's is its summed NLL / tokens), their
difference, the global gradient norms before clipping (charlm's divided by the window's T, so
both are norms of the mean-loss gradient), and after the update the parameter difference
``||p_charlm - p_torch|| / ||p_charlm||`` over all parameters, the same for the change since
the start (``||Δ_charlm - Δ_torch|| / ||Δ_charlm||``, far more sensitive), and the tensor whose
change differs most. Torch's effective bias is bias_ih + bias_hh. ``--eval-every N`` also scores
both models on the validation text every N steps, in charlm's convention (``tasks.lm.evaluate``:
``--eval-batch`` rows from a zero state, the state carried), torch's module over the very same
windows. At the end: mean losses and the paired mean difference (charlm - torch) over blocks of
steps, and the validation figures.

Notes. The last window of an epoch is shorter (T' < bptt steps). charlm's loss sums over the
window's steps, so that window's gradient is T'/bptt of a full window's scale and Adam gives it
that little weight; torch's mean loss gives it a full window's weight. Identical runs therefore
part there (the first epoch end), not before.

Run (one core, one thread, low priority, from the repository root)::

    nice -n 19 taskset -c 1 env OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        .venv/bin/python bench/same_init.py --hidden 64 --layers 2 --embed 16 --batch 8 \\
        --bptt 32 --steps 50 --torch-bias ih --match-eps     # agree to float32 round-off
    # the recipe's shapes, as torch_quality.py trains (both biases, eps 1e-8), charlm's
    # default clip (5 on its summed loss), validation every 150 steps:
    ... bench/same_init.py --hidden 256 --embed 64 --batch 32 --bptt 128 --steps 300 \\
        --print-every 10 --clip-charlm 5 --eval-every 150 --out results/same_init.jsonl

``--out FILE`` appends one JSON line per step and a final summary line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT / "corpora" / "tinyshakespeare.txt"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_CORPUS), help="a text file (character level)")
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--embed", type=int, default=16)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--bptt", type=int, default=32)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip-torch", type=float, default=5.0,
                   help="clip_grad_norm_ of the mean loss (torch); charlm gets this × bptt")
    p.add_argument("--clip-charlm", type=float, default=None,
                   help="override charlm's clip on its summed loss (default clip-torch × bptt)")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="> 0: both drop, with different masks (compare trends only)")
    p.add_argument("--torch-bias", choices=["both", "ih"], default="both",
                   help="both: bias_ih and bias_hh trained (nn.LSTM as is); "
                        "ih: bias_hh frozen at 0")
    p.add_argument("--match-eps", action="store_true",
                   help="torch Adam eps = 1e-8 / bptt: charlm's eps 1e-8 on its T-times larger "
                        "gradient is that eps on the mean loss's (default: torch's 1e-8)")
    p.add_argument("--init", choices=["shared", "own"], default="shared",
                   help="shared: torch starts from charlm's weights; own: torch's default init")
    p.add_argument("--seed", type=int, default=1234, help="charlm's init and dropout; torch's seed")
    p.add_argument("--torch-seed", type=int, default=None,
                   help="torch's seed (its dropout masks; with --init own its weights too) "
                        "when it should differ from --seed: two torch runs from the same "
                        "weights with other masks show how far masks alone move a run")
    p.add_argument("--only", choices=["both", "charlm", "torch"], default="both",
                   help="train one side only (the other's losses are NaN): each side's run "
                        "does not depend on the other's, so two runs that differ only in one "
                        "side's options can share the other side's run (see "
                        "bench/lm_quality.py pair)")
    p.add_argument("--print-every", type=int, default=1)
    p.add_argument("--eval-every", type=int, default=0,
                   help="every N steps (and after the last) score both models on the validation "
                        "text: charlm's tasks.lm.evaluate, torch over the same rows and windows")
    p.add_argument("--eval-batch", type=int, default=32, help="validation rows (both sides)")
    p.add_argument("--block", type=int, default=0,
                   help="steps per block in the summary (0: about a tenth of --steps)")
    p.add_argument("--out", default=None, help="append JSON lines here")
    return p.parse_args(argv)


def to_torch_layout(w: np.ndarray, n: int) -> np.ndarray:
    """charlm's LSTM gate order -> torch's, with the library's one map (its own inverse)."""
    from charlm.nn.cells.lstm import torch_layout
    return torch_layout(w, n)


to_charlm_layout = to_torch_layout


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from charlm.nn.model import Model, ModelConfig
    from charlm.tasks import lm as lmtask
    from charlm.tasks.lm import LMTask
    from charlm.tasks.stream import prepare_corpus
    from charlm.training import trainer as ctrain
    from charlm.training.trainer import TrainConfig, Trainer

    nan = float("nan")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed if args.torch_seed is None else args.torch_seed)
    B, T, H, L, E = args.batch, args.bptt, args.hidden, args.layers, args.embed
    clip_c = args.clip_charlm if args.clip_charlm is not None else args.clip_torch * T
    out_f = open(args.out, "a") if args.out else None

    def emit(obj):
        if out_f:
            out_f.write(json.dumps(obj) + "\n")
            out_f.flush()

    # ------------------------------------------------------------ charlm
    tcfg = TrainConfig(level="char", optimizer="adam", lr=args.lr, clip=clip_c, clip_mode="norm",
                       batch=B, bptt=T, seed=args.seed, valid_fraction=args.valid_fraction,
                       schedule="constant")
    with open(args.data, encoding="utf-8") as f:
        text = f.read()
    corpus = prepare_corpus([text], tcfg)
    mcfg = ModelConfig(cell="lstm", layers=L, hidden=H, embed=E, dropout=args.dropout,
                       dtype="float32", task="lm")
    model = Model.create(mcfg, corpus.vocab, np.random.default_rng(tcfg.seed))
    V = len(corpus.vocab)
    init = {k: v.copy() for k, v in model.params.items()}
    tmp = tempfile.TemporaryDirectory()
    trainer = Trainer(model, LMTask(corpus, tcfg, model), tcfg,
                      Path(tmp.name) / "never_written.npz")
    batches = trainer.batches
    n_windows = len(batches)

    norms: list[float] = []
    real_clip = ctrain.clip_gradients

    def recording_clip(grads, max_value, mode="norm"):
        norm = real_clip(grads, max_value, mode)
        norms.append(norm)
        return norm

    ctrain.clip_gradients = recording_clip   # train_step looks the name up in its module

    # ------------------------------------------------------------- torch
    class CharLSTM(nn.Module):         # as torch_quality.py builds it
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, E)
            self.rnn = nn.LSTM(E, H, num_layers=L, dropout=args.dropout if L > 1 else 0.0)
            self.drop = nn.Dropout(args.dropout)
            self.proj = nn.Linear(H, V)

        def forward(self, x, state):
            out, state = self.rnn(self.emb(x), state)
            return self.proj(self.drop(out)), state

        def zero_state(self, b):
            return (torch.zeros(L, b, H), torch.zeros(L, b, H))

    net = CharLSTM()
    shared = args.init == "shared"
    if shared:
        with torch.no_grad():
            net.emb.weight.copy_(torch.from_numpy(init["E"]))
            for l in range(L):
                pre = f"L{l + 1}."
                getattr(net.rnn, f"weight_ih_l{l}").copy_(
                    torch.from_numpy(to_torch_layout(init[pre + "W_ax"], H)))
                getattr(net.rnn, f"weight_hh_l{l}").copy_(
                    torch.from_numpy(to_torch_layout(init[pre + "W_aa"], H)))
                getattr(net.rnn, f"bias_ih_l{l}").copy_(
                    torch.from_numpy(to_torch_layout(init[pre + "b"], H)))
                getattr(net.rnn, f"bias_hh_l{l}").zero_()
            net.proj.weight.copy_(torch.from_numpy(init["W_y"]))
            net.proj.bias.copy_(torch.from_numpy(init["b_y"]))
    if args.torch_bias == "ih":
        for l in range(L):
            with torch.no_grad():
                getattr(net.rnn, f"bias_hh_l{l}").zero_()
            getattr(net.rnn, f"bias_hh_l{l}").requires_grad_(False)
    t_params = [p for p in net.parameters() if p.requires_grad]
    torch_eps = 1e-8 / T if args.match_eps else 1e-8
    opt = torch.optim.Adam(t_params, lr=args.lr, eps=torch_eps)

    def torch_in_charlm_layout() -> dict[str, np.ndarray]:
        d = {"E": net.emb.weight.detach().numpy(), "W_y": net.proj.weight.detach().numpy(),
             "b_y": net.proj.bias.detach().numpy()}
        for l in range(L):
            pre = f"L{l + 1}."
            g = lambda name: getattr(net.rnn, f"{name}_l{l}").detach().numpy()  # noqa: E731
            d[pre + "W_ax"] = to_charlm_layout(g("weight_ih"), H)
            d[pre + "W_aa"] = to_charlm_layout(g("weight_hh"), H)
            d[pre + "b"] = to_charlm_layout(g("bias_ih") + g("bias_hh"), H)
        return d

    def compare() -> tuple[float, float, str, float]:
        tp = torch_in_charlm_layout()
        num = den = dden = 0.0        # Σ |p_c - p_t|², Σ |p_c|², Σ |Δ_c|² over all tensors
        worst, worst_name = -1.0, ""
        for k, pc in model.params.items():
            pc64, pt64, p0 = (a.astype(np.float64) for a in (pc, tp[k], init[k]))
            diff = float(np.sum((pc64 - pt64) ** 2))   # also |Δ_c - Δ_t|²: same start
            upd = float(np.sum((pc64 - p0) ** 2))
            num, den, dden = num + diff, den + float(np.sum(pc64 ** 2)), dden + upd
            r = math.sqrt(diff / upd) if upd > 0 else (0.0 if diff == 0 else math.inf)
            if r > worst:
                worst, worst_name = r, k
        return (math.sqrt(num / den), math.sqrt(num / dden) if dden else math.inf,
                worst_name, worst)

    config = {"type": "config", "data": args.data, "V": V, "hidden": H, "layers": L, "embed": E,
              "batch": B, "bptt": T, "steps": args.steps, "lr": args.lr,
              "clip_torch": args.clip_torch, "clip_charlm_summed": clip_c,
              "dropout": args.dropout, "torch_bias": args.torch_bias, "init": args.init,
              "torch_adam_eps": torch_eps,
              "seed": args.seed, "torch_seed": args.torch_seed, "only": args.only,
              "windows_per_epoch": n_windows,
              "train_tokens": int(len(corpus.train_ids)), "params_charlm": model.n_params(),
              "params_torch": sum(p.numel() for p in net.parameters()), "torch": torch.__version__,
              "numpy": np.__version__}
    emit(config)
    print("# " + json.dumps(config), flush=True)
    if shared:
        with torch.no_grad():
            print("# initial parameter difference (charlm layout, torch b = b_ih + b_hh): "
                  f"{compare()[0]:.3g}", flush=True)
    hdr = (f"{'step':>5} {'win':>4} {'loss charlm':>12} {'loss torch':>12} {'c - t':>10} "
           f"{'|g| charlm/T':>12} {'|g| torch':>10}")
    if shared and args.only == "both":
        hdr += f" {'rel dp':>9} {'rel dΔ':>9}  worst Δ tensor"
    print(hdr, flush=True)

    from charlm.tasks.stream import Batches
    valid_batches = Batches.from_stream(corpus.valid_ids, args.eval_batch, T)

    def torch_valid() -> float:
        """Mean NLL per token over the validation stream in charlm's convention (rows from a
        zero state, the state carried across windows), torch's module in eval mode."""
        net.eval()
        total = 0.0
        with torch.no_grad():
            st = net.zero_state(valid_batches.m)
            for j in range(len(valid_batches)):
                Xv, Yv = valid_batches.window(j)
                lg, st = net(torch.from_numpy(Xv.astype(np.int64)), st)
                total += float(F.cross_entropy(lg.reshape(-1, V),
                                               torch.from_numpy(Yv.astype(np.int64)).reshape(-1),
                                               reduction="sum").double())
        net.train()
        return total / valid_batches.tokens

    evals = []

    # ---------------------------------------------------------------- loop
    run = trainer.run
    state = net.zero_state(B)
    lc_all, lt_all = [], []
    t_c = t_t = 0.0
    net.train()
    for step in range(args.steps):
        k = run.window
        if k == 0:
            trainer.task.start_epoch(model, run.epoch)
            state = net.zero_state(B)
        X, Y = batches.window(k)
        Tk = X.shape[0]

        t0 = time.perf_counter()
        norms.clear()
        loss_c, g_c, tokens = nan, nan, X.size
        if args.only != "torch":
            loss_c, tokens = trainer.train_step(k)
            if loss_c is None:
                print(f"# charlm's step {step} diverged (undone); stopping", flush=True)
                break
            g_c = norms[-1] / Tk if norms else nan
        t_c += time.perf_counter() - t0
        trainer.advance(tokens)                 # the run loop's own bookkeeping

        t0 = time.perf_counter()
        loss_t, g_t = nan, nan
        if args.only != "charlm":
            x = torch.from_numpy(X.astype(np.int64))
            y = torch.from_numpy(Y.astype(np.int64))
            state = tuple(s.detach() for s in state)
            logits, state = net(x, state)
            loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            g_t = float(nn.utils.clip_grad_norm_(t_params, args.clip_torch))
            opt.step()
            loss_t = float(loss.item())
        t_t += time.perf_counter() - t0

        lc_all.append(loss_c)
        lt_all.append(loss_t)
        rec = {"type": "step", "step": step, "window": k, "epoch": run.epoch,
               "loss_charlm": loss_c, "loss_torch": loss_t,
               "gnorm_charlm_over_T": g_c, "gnorm_torch": g_t}
        line = (f"{step:5d} {k:4d} {loss_c:12.6f} {loss_t:12.6f} {loss_c - loss_t:10.2e} "
                f"{g_c:12.5g} {g_t:10.5g}")
        if shared and args.only == "both":
            with torch.no_grad():
                rel_p, rel_d, worst_name, worst = compare()
            rec.update(rel_param_diff=rel_p, rel_update_diff=rel_d, worst_tensor=worst_name,
                       worst_tensor_rel_update_diff=worst)
            line += f" {rel_p:9.2e} {rel_d:9.2e}  {worst_name} {worst:.2e}"
        emit(rec)
        if step % args.print_every == 0 or step == args.steps - 1:
            print(line, flush=True)
        if args.eval_every and ((step + 1) % args.eval_every == 0 or step == args.steps - 1):
            vc = (lmtask.evaluate(model, corpus.valid_ids, args.eval_batch, T)[0]
                  if args.only != "torch" else nan)
            vt = torch_valid() if args.only != "charlm" else nan
            evals.append({"step": step + 1, "valid_charlm": vc, "valid_torch": vt})
            emit({"type": "valid", **evals[-1]})
            print(f"# valid after {step + 1} steps: charlm {vc:.5f}  torch {vt:.5f}  "
                  f"c - t {vc - vt:+.5f}", flush=True)

    ctrain.clip_gradients = real_clip
    tmp.cleanup()

    # ------------------------------------------------------------- summary
    n = len(lc_all)
    lc, lt = np.array(lc_all), np.array(lt_all)
    blk = args.block or max(1, n // 10)
    print(f"\n# steps {n}; seconds per step: charlm {t_c / max(n, 1):.3f}, "
          f"torch {t_t / max(n, 1):.3f}")
    print(f"# {'steps':>11} {'mean charlm':>12} {'mean torch':>12} {'mean c - t':>11} "
          f"{'sd of mean':>10}")
    table = []
    for a in range(0, n, blk):
        b = min(n, a + blk)
        d = lc[a:b] - lt[a:b]
        se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
        table.append({"from": a, "to": b, "charlm": float(lc[a:b].mean()),
                      "torch": float(lt[a:b].mean()), "diff": float(d.mean()), "se": se})
        print(f"# {a:5d}-{b - 1:<5d} {lc[a:b].mean():12.5f} {lt[a:b].mean():12.5f} "
              f"{d.mean():11.5f} {se:10.5f}")
    for e in evals:
        print(f"# valid after {e['step']:5d} steps: charlm {e['valid_charlm']:.5f}  torch "
              f"{e['valid_torch']:.5f}  c - t {e['valid_charlm'] - e['valid_torch']:+.5f}")
    emit({"type": "summary", "config": config, "blocks": table, "valid": evals,
          "s_per_step_charlm": t_c / max(n, 1), "s_per_step_torch": t_t / max(n, 1)})
    if out_f:
        out_f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
