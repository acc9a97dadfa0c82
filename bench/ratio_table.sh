#!/usr/bin/env bash
# The ratio table of issue 15: charlm bench against PyTorch's torch_ref.py, row by row, in one
# sitting. Each row runs charlm and PyTorch alternately three times (A B A B A B) and takes the
# medians; generation rows run PyTorch with oneDNN on and off and keep the better median.
#
# Usage (from the repository root):
#   bench/ratio_table.sh [ROW ...]        ROW = CONFIG:CELL:MODE, e.g. C1:lstm:eval
# With no ROW: every row of the issue's table (C1 rnn/gru/lstm train, eval, generate; C2 lstm
# train; W1 lstm train, eval). Split the rows over several jobs to run them in parallel.
#
# Environment (defaults in brackets):
#   PY         python that runs charlm (PYTHONPATH is set to this repository) [python3]
#   TORCH_PY   python with torch [$PY]
#   TORCH_REF  path of torch_ref.py [../shared/bench/torch_ref.py]
#   STEPS      timed steps per train/eval run, both sides [20]
#   REPEATS    A/B pairs per row [3]
#   PIN        prefix for every command, e.g. "taskset -c 0,1" [none]
#   BASE       another charlm checkout (the "before"): run as a third side, C A B C A B … [none]
# Output: one JSON line per row on stdout (every run's figure, the medians, the ratio), then
# the table. Figures are tokens/s: for train/eval the median step on both sides (charlm bench's
# tokens_per_s, torch_ref's tokens_per_s_median_step); for generation, tokens over the timed
# 2,000 tokens at batch 1 on both sides. The machine charlm bench reports goes first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PY="${PY:-python3}" TORCH_PY="${TORCH_PY:-${PY:-python3}}"
export TORCH_REF="${TORCH_REF:-../shared/bench/torch_ref.py}" STEPS="${STEPS:-20}"
export REPEATS="${REPEATS:-3}" PIN="${PIN:-}" BASE="${BASE:-}" PYTHONPATH="$PWD"
exec "$PY" - "$@" <<'EOF'
import json, os, shlex, statistics, subprocess, sys

ALL = ["C1:rnn:train", "C1:gru:train", "C1:lstm:train", "C1:rnn:eval", "C1:gru:eval",
       "C1:lstm:eval", "C1:rnn:generate", "C1:gru:generate", "C1:lstm:generate",
       "C2:lstm:train", "W1:lstm:train", "W1:lstm:eval"]
SIZES = {"C1": (65, 64, 256, 2, 32, 64), "C2": (65, 128, 512, 2, 64, 128),
         "W1": (10000, 200, 200, 2, 20, 35)}
env = os.environ
pin = shlex.split(env["PIN"])
rows = sys.argv[1:] or ALL


def run(cmd, **kw):
    out = subprocess.run(pin + cmd, capture_output=True, text=True, check=True, **kw).stdout
    return json.loads(out.strip().splitlines()[-1])


def charlm(cfg, cell, mode, where=None):
    kw = {} if where is None else {"cwd": where, "env": {**env, "PYTHONPATH": where}}
    r = run([env["PY"], "-m", "charlm", "bench", "--config", cfg, "--cell", cell,
             "--mode", mode, "--steps", env["STEPS"], "--json"], **kw)
    return r["tokens_per_s"], r


def torch(cfg, cell, mode, mkldnn):
    V, E, H, L, B, T = SIZES[cfg]
    r = run([env["TORCH_PY"], env["TORCH_REF"], "--cell", cell, "--vocab", str(V),
             "--embed", str(E), "--hidden", str(H), "--layers", str(L), "--batch", str(B),
             "--bptt", str(T), "--steps", env["STEPS"], "--mode", mode, "--mkldnn", mkldnn,
             "--json"])
    return r["tokens_per_s"] if mode == "generate" else r["tokens_per_s_median_step"]


table, machine = [], None
for row in rows:
    cfg, cell, mode = row.split(":")
    ours, before, theirs = [], [], {"on": [], "off": []}
    for _ in range(int(env["REPEATS"])):
        if env["BASE"]:
            before.append(charlm(cfg, cell, mode, os.path.abspath(env["BASE"]))[0])
        tok, r = charlm(cfg, cell, mode)
        ours.append(tok)
        machine = machine or r.get("machine")
        for k in (("on", "off") if mode == "generate" else ("on",)):
            theirs[k].append(torch(cfg, cell, mode, k))
    med = statistics.median(ours)
    best = max((statistics.median(v), k) for k, v in theirs.items() if v)
    line = {"row": row, "charlm": ours, "torch": {k: v for k, v in theirs.items() if v},
            "charlm_median": med, "torch_median": best[0], "torch_mkldnn": best[1],
            "ratio": med / best[0]}
    if before:
        line.update(before=before, before_median=statistics.median(before),
                    before_ratio=statistics.median(before) / best[0])
    print(json.dumps(line), flush=True)
    table.append(line)

if machine:
    print("machine:", json.dumps(machine))
head = f"{'row':<18}{'charlm tok/s':>14}{'PyTorch tok/s':>15}{'ratio':>8}"
print(head + (f"{'before tok/s':>14}{'ratio':>8}" if env["BASE"] else ""))
for t in table:
    note = f"  (oneDNN {t['torch_mkldnn']})" if t["row"].endswith("generate") else ""
    was = (f"{t['before_median']:>14,.0f}{t['before_ratio']:>8.2f}" if env["BASE"] else "")
    print(f"{t['row']:<18}{t['charlm_median']:>14,.0f}{t['torch_median']:>15,.0f}"
          f"{t['ratio']:>8.2f}{was}{note}")
EOF
