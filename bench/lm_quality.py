#!/usr/bin/env python3
"""Language-model quality in a fixed time, each measurement one command.

Two jobs run at the same time, each pinned to one core (``taskset``) with one thread, so that
both see the same machine; then each model's validation figure is read back. Run it on an
otherwise idle machine: the figures depend on the time each job gets.

``race`` — the default character recipe against the PyTorch reference (``torch_quality.py``
from the project's shared bench folder: the same model, 2×512 LSTM, embedding 64, dropout 0.2,
batch 32, bptt 128, Adam 2e-3, clip 5 on its mean loss) on tiny Shakespeare for ``--budget``
seconds, the same seed for both::

    bench/lm_quality.py race --seed 0 --budget 600 --out results/race.jsonl

charlm's side is ``charlm train corpora/tinyshakespeare.txt --time {budget}s --seed S`` with
every other option at its default (validation every 500 steps and at the end; the last 10 %,
cut at a line break, is validation); ``--charlm-opts "--clip 640"`` adds options. Reported:
each side's steps, tokens seen, and last validation loss (nats per character over the whole
validation text; charlm's as its run records it, PyTorch's as torch_quality.py prints it).

``wt2`` — two charlm word-level language models on WikiText-2 (``--corpora``/wikitext-2,
train.txt and its own valid.txt; ``--level word --tokenizer whitespace --vocab-size 10000``,
the corpus's own ``<unk>`` read as charlm's <UNK> and scored like any other token) for
``--budget`` seconds each, side A on core 0 and side B on core 1::

    bench/lm_quality.py wt2 --budget 480 \\
        --a "untied: --embed 200 --hidden 200 --dropout 0.2" \\
        --b "tied: --embed 200 --hidden 200 --dropout 0.2 --tie-weights"

Each side is ``LABEL: charlm train options`` added to the fixed part (``--layers 2 --batch 20
--bptt 35 --lr 2e-3`` unless the side gives its own). The figure is what ``charlm eval
valid.txt --model M --json`` prints for the saved (best) model: perplexity per token, <unk>
targets included.

Every command prints one JSON line per side and a markdown row, and appends the JSON lines to
``--out`` with the machine as ``charlm bench`` reports it and the commit.

``pair`` — no training: two sides of ``bench/same_init.py`` runs (JSON lines of its ``--out``)
compared step by step, each ``FILE:charlm`` or ``FILE:torch``: the mean training loss of each
in blocks of ``--block`` steps, the paired mean difference (first - second) and its standard
error, and the validation figures at the steps both evaluated. Two runs that differ in one
side's options only (``--only``) share the other side, which need not be run twice::

    bench/lm_quality.py pair clip5.jsonl:charlm clip640.jsonl:charlm --block 50
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
WT2_FIXED = ["--level", "word", "--tokenizer", "whitespace", "--vocab-size", "10000"]
WT2_DEFAULTS = {"--layers": "2", "--batch": "20", "--bptt": "35", "--lr": "2e-3"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("race", help="charlm's default char recipe against torch_quality.py")
    r.add_argument("--seed", type=int, default=0, help="both sides' seed")
    r.add_argument("--budget", type=float, default=600.0, help="seconds of training each")
    r.add_argument("--data", default=str(ROOT / "corpora" / "tinyshakespeare.txt"))
    r.add_argument("--torch-quality", default=str(SHARED / "bench" / "torch_quality.py"))
    r.add_argument("--charlm-opts", default="", help="more charlm train options")
    w = sub.add_parser("wt2", help="two charlm word LMs on WikiText-2, one core each")
    w.add_argument("--budget", type=float, default=480.0, help="seconds of training each")
    w.add_argument("--corpora", default=str(SHARED / "corpora"))
    w.add_argument("--a", required=True, help='"LABEL: charlm train options" (core 0)')
    w.add_argument("--b", required=True, help='"LABEL: charlm train options" (core 1)')
    w.add_argument("--seed", type=int, default=1234)
    c = sub.add_parser("pair", help="two sides of same_init.py runs, step by step")
    c.add_argument("first", help="FILE:charlm or FILE:torch")
    c.add_argument("second", help="FILE:charlm or FILE:torch")
    c.add_argument("--block", type=int, default=50)
    for q in (r, w):
        q.add_argument("--out", default=None, help="append JSON lines here")
        q.add_argument("--keep", default=None, help="keep the model files in this folder")
    return p.parse_args(argv)


def one_thread_env() -> dict:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    return env


def pinned(core: int, cmd: list[str]) -> list[str]:
    """cmd on one core (when taskset is there and the machine has that core)."""
    if shutil.which("taskset") and core < (os.cpu_count() or 1):
        return ["taskset", "-c", str(core), *cmd]
    return cmd


def run_pair(cmds: list[list[str]], logs: list[Path]) -> bool:
    """Start every command at once and wait for all. False (each log's end and the exit
    codes said on stderr) when any failed."""
    procs = []
    for cmd, log in zip(cmds, logs):
        with open(log, "w") as f:
            procs.append(subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                          env=one_thread_env(), cwd=ROOT))
    codes = [p.wait() for p in procs]
    if any(codes):
        for log in logs:
            sys.stderr.write(log.read_text()[-2000:])
        print(f"a side failed: exit codes {codes}", file=sys.stderr)
    return not any(codes)


def charlm_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "charlm", *map(str, args)]


def run_record(model_path: Path) -> dict:
    """What the model file says of its run: steps, tokens, last and best validation."""
    from charlm.training import checkpoint
    model, meta, _ = checkpoint.load(model_path)
    run = meta["run"]
    last = [h for h in run["history"] if "valid_loss" in h][-1]
    return {"steps": run["step"], "tokens_seen": run["tokens_seen"],
            "train_seconds": round(run["elapsed"], 1), "last_valid": last["valid_loss"],
            "best_valid": run["best_valid"], "best_step": run["best_step"],
            "params": model.n_params()}


def context() -> dict:
    from charlm.use.bench import describe_machine, machine_info
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": describe_machine(machine_info()),
            "commit": commit + ("+changes" if dirty else ""),
            "command": "bench/lm_quality.py " + " ".join(map(shlex.quote, sys.argv[1:]))}


def emit(records: list[dict], out: str | None) -> None:
    for r in records:
        print(json.dumps(r), flush=True)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")


def race(args) -> int:
    work = Path(args.keep or tempfile.mkdtemp(prefix="lmq-"))
    work.mkdir(parents=True, exist_ok=True)
    ctx = context()
    model = work / f"race_charlm_seed{args.seed}.npz"
    budget = f"{args.budget:g}s"
    cmds = [pinned(0, charlm_cmd("train", args.data, "--time", budget, "--seed", args.seed,
                                 "--out", model, "--force",
                                 *shlex.split(args.charlm_opts))),
            pinned(1, [sys.executable, args.torch_quality, "--data", args.data,
                       "--threads", "1", "--budget-seconds", f"{args.budget:g}",
                       "--seed", str(args.seed)])]
    logs = [work / f"race_charlm_seed{args.seed}.log", work / f"race_torch_seed{args.seed}.log"]
    if not run_pair(cmds, logs):
        return 1
    c = run_record(model)
    final = [json.loads(x) for x in logs[1].read_text().splitlines()
             if x.startswith("{") and '"final"' in x][-1]
    recs = [{"type": "race", "side": "charlm", "seed": args.seed, "budget_s": args.budget,
             "opts": args.charlm_opts, **c, **ctx},
            {"type": "race", "side": "pytorch", "seed": args.seed, "budget_s": args.budget,
             "steps": final["steps"], "tokens_seen": final["train_tokens_seen"],
             "train_seconds": final["train_s"], "last_valid": final["last_val_loss"],
             "best_valid": final["best_val_loss"], **ctx}]
    emit(recs, args.out)
    print(f"| {args.seed} | {c['steps']} | {c['tokens_seen'] / 1e6:.2f} M | "
          f"{c['last_valid']:.4f} | {final['steps']} | "
          f"{final['train_tokens_seen'] / 1e6:.2f} M | {final['last_val_loss']:.4f} |")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def side(spec: str) -> tuple[str, list[str]]:
    label, _, opts = spec.partition(":")
    given = shlex.split(opts)
    extra = [x for k, v in WT2_DEFAULTS.items() if k not in given for x in (k, v)]
    return label.strip(), given + extra


def wt2(args) -> int:
    work = Path(args.keep or tempfile.mkdtemp(prefix="lmq-"))
    work.mkdir(parents=True, exist_ok=True)
    ctx = context()
    corpus = Path(args.corpora) / "wikitext-2"
    train, valid = corpus / "train.txt", corpus / "valid.txt"
    sides = [side(args.a), side(args.b)]
    models = [work / f"wt2_{i}_{label or i}.npz" for i, (label, _) in enumerate(sides)]
    cmds = [pinned(i, charlm_cmd("train", train, "--valid", valid, *WT2_FIXED, *opts,
                                 "--seed", args.seed, "--time", f"{args.budget:g}s",
                                 "--eval-every", "1000000", "--out", m, "--force"))
            for i, ((_, opts), m) in enumerate(zip(sides, models))]
    logs = [m.with_suffix(".log") for m in models]
    if not run_pair(cmds, logs):
        return 1
    recs = []
    for (label, opts), m in zip(sides, models):
        ev = json.loads(subprocess.run(charlm_cmd("eval", valid, "--model", m, "--json"),
                                       capture_output=True, text=True, check=True, cwd=ROOT,
                                       env=one_thread_env()).stdout)
        recs.append({"type": "wt2", "label": label, "opts": " ".join(opts),
                     "budget_s": args.budget, **run_record(m),
                     "valid_perplexity": ev["perplexity"], "valid_nll": ev["nll"],
                     "valid_tokens": ev["tokens"], **ctx})
    emit(recs, args.out)
    for r in recs:
        print(f"| {r['label']} | `{r['opts']}` | {r['params'] / 1e6:.2f} M | {r['steps']} | "
              f"{r['tokens_seen'] / 1e6:.2f} M | {r['valid_perplexity']:.1f} |")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def read_side(spec: str) -> tuple[dict, dict]:
    """FILE:SIDE of a same_init.py run -> (step -> training loss, step -> validation loss)."""
    path, _, which = spec.rpartition(":")
    if which not in ("charlm", "torch"):
        raise SystemExit(f"{spec}: give FILE:charlm or FILE:torch")
    losses, valid = {}, {}
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        if r["type"] == "step":
            losses[r["step"]] = r[f"loss_{which}"]
        elif r["type"] == "valid":
            valid[r["step"]] = r[f"valid_{which}"]
    return losses, valid


def pair(args) -> int:
    (l1, v1), (l2, v2) = read_side(args.first), read_side(args.second)
    steps = sorted(k for k in set(l1) & set(l2) if l1[k] == l1[k] and l2[k] == l2[k])
    print(f"# first: {args.first}\n# second: {args.second}\n# {len(steps)} common steps")
    print("| steps | first | second | first - second | s.e. |\n|---|---:|---:|---:|---:|")
    for a in range(0, len(steps), args.block):
        ks = steps[a:a + args.block]
        d = [l1[k] - l2[k] for k in ks]
        mean = sum(d) / len(d)
        se = (sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d)) ** 0.5 \
            if len(d) > 1 else float("nan")
        print(f"| {ks[0]}-{ks[-1]} | {sum(l1[k] for k in ks) / len(ks):.4f} | "
              f"{sum(l2[k] for k in ks) / len(ks):.4f} | {mean:+.4f} | {se:.4f} |")
    both = sorted(k for k in set(v1) & set(v2) if v1[k] == v1[k] and v2[k] == v2[k])
    if both:
        print("\n| after step | first valid | second valid | first - second |\n"
              "|---:|---:|---:|---:|")
        for k in both:
            print(f"| {k} | {v1[k]:.4f} | {v2[k]:.4f} | {v1[k] - v2[k]:+.4f} |")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return {"race": race, "wt2": wt2, "pair": pair}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
