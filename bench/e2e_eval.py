#!/usr/bin/env python3
"""Evaluation time end to end, as users see it (issue 15): charlm against PyTorch on the
README's two "Quality in a fixed time" recipes, on the same validation text.

Modes (bench/job_e2e.sh runs ``run``):

  run                    the whole comparison; settings from the environment (see job_e2e.sh)
  cli TIMES -- ARGS...   charlm's command line with ARGS (e.g. ``eval VALID --model M``), as
                         ``python -m charlm ARGS`` runs it, writing to TIMES (JSON) how long its
                         validation pass (``train.evaluate``) and its <UNK> pass took
  rows MODEL CORPUS      the validation loss of a char model on the last 10 % of CORPUS (the
                         split training makes) with 32 rows, with 1 row (the exact single
                         stream) and with 32 rows warmed up as torch_quality.py warms them

What each side's time is:

* charlm, "pass": ``charlm.tasks.lm.evaluate(model, ids, m, T)``, the function training's
  validation runs, with the model's recorded ``eval_batch`` rows and ``bptt`` window, timed
  inside the ``charlm eval`` process below (the command calls that very function; the wrapper
  ``cli`` only puts a clock round it).
* charlm, "eval command": the wall-clock time of the whole ``charlm eval VALID --model M
  --json`` process, from before the process is started to its exit: interpreter start,
  imports, reading the model and the file, encoding, the pass, and for a text with <UNK>
  targets the second pass that gives the perplexity without them.
* PyTorch: torch_quality.py's own ``evaluate`` (its ``eval_s``, timed by the script round
  that one call), in a run with ``--budget-seconds 0``: one training step, then exactly one
  validation pass, which is the figure kept. Process start, data loading and the one step
  are outside it. The script's evaluation scores the same text as --eval-rows 32 rows, each
  row after the first first run over the 256 tokens before it (burn-in, not scored).

Each side runs on the same cores with the same thread count (OMP/OPENBLAS/MKL_NUM_THREADS and
torch's --threads), alternately (charlm, PyTorch, charlm, PyTorch, ...), and the medians are
reported. One run at a time: with one thread each run is pinned to core 0, with two threads
to cores 0 and 1. (Running the two recipes at once, one per core, was tried and dropped: a
run took up to 25 % less time once the other core's recipe had finished.) Ratios: time
ratio = charlm's seconds / PyTorch's seconds; speed ratio = its inverse (above 1: charlm is
faster).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


# --------------------------------------------------------------------- cli: timed charlm
def cli(times_path: str, args: list[str]) -> None:
    """Run charlm's command line as ``python -m charlm`` would, recording the pass times."""
    import charlm.api as api
    from charlm.cli import main

    times = {"pass_s": 0.0, "passes": 0, "unk_s": 0.0, "tokens": 0}
    # charlm before the <UNK> figures came from the pass itself had a second pass for them
    evaluate, unk_nll = api.evaluate, getattr(api, "_unk_nll", None)

    def timed_evaluate(*a, **k):
        t0 = time.perf_counter()
        r = evaluate(*a, **k)
        times["pass_s"] += time.perf_counter() - t0
        times["passes"] += 1
        times["tokens"] += r[1]
        return r

    def timed_unk(*a, **k):
        t0 = time.perf_counter()
        r = unk_nll(*a, **k)
        times["unk_s"] += time.perf_counter() - t0
        return r

    api.evaluate = timed_evaluate
    if unk_nll is not None:
        api._unk_nll = timed_unk
    sys.argv = ["charlm", *args]
    try:
        main()
    finally:
        Path(times_path).write_text(json.dumps(times))


# --------------------------------------------------------------------- rows: task 3
def rows(model_path: str, corpus: str, burnin: int = 256) -> None:
    """Validation loss of one model, three ways, on the validation part training uses."""
    import numpy as np

    from charlm.tasks.lm import evaluate
    from charlm.tasks.stream import Batches, split_validation
    from charlm.text.vocab import sequence_chunks
    from charlm.training import checkpoint

    model, meta, _ = checkpoint.load(model_path)
    cfg = meta.get("config") or {}
    text = Path(corpus).read_text(encoding="utf-8")
    _, valid = split_validation(text, float(cfg.get("valid_fraction", 0.1)))
    ids = model.vocab.encode_chunks(sequence_chunks(valid, prose=bool(cfg.get("prose", False)),
                                                    level=model.vocab.level))
    T = int(cfg.get("bptt", 128))
    out = {"type": "rows", "model": model_path, "valid_tokens": int(len(ids)), "bptt": T}
    for m in (32, 1):
        t0 = time.perf_counter()
        nll, n = evaluate(model, ids, m, T)
        out[f"nll_{m}_rows"], out[f"tokens_{m}_rows"] = nll, n
        out[f"seconds_{m}_rows"] = round(time.perf_counter() - t0, 2)
    # 32 rows as evaluate lays them out, but each row after the first starts from the state
    # reached over the `burnin` tokens before its first input (not scored): the convention of
    # torch_quality.py, with charlm's own rows and windows.
    m = 32
    b = Batches.from_stream(ids, m, T)
    n = b.steps_per_row
    s = np.concatenate([[0], ids[: m * n]])          # the stream evaluate reads (EOS first)
    W = np.zeros((burnin, m), dtype=ids.dtype)
    for r in range(1, m):
        W[:, r] = s[r * n - burnin: r * n]
    _, warm = model.infer(W, model.zero_state(m))
    state = []
    for layer in warm:                                # row 0 starts the stream: zero state
        arrays = [a.copy() for a in (layer if isinstance(layer, tuple) else (layer,))]
        for a in arrays:
            a[0] = 0.0                                # state arrays are (m, n_a)
        state.append(tuple(arrays) if isinstance(layer, tuple) else arrays[0])
    total = 0.0
    for k in range(len(b)):
        X, Y = b.window(k)
        logp, state = model.target_log_probs(X, Y, state)
        total -= float(logp.sum())
    out["nll_32_rows_burnin"] = total / b.tokens
    out["burnin"] = burnin
    out["diff_32_minus_1"] = out["nll_32_rows"] - out["nll_1_rows"]
    out["diff_32burnin_minus_1"] = out["nll_32_rows_burnin"] - out["nll_1_rows"]
    print(json.dumps(out), flush=True)


# --------------------------------------------------------------------- run: the comparison
def run() -> None:
    env = os.environ
    corpora = Path(env["CORPORA"])
    out = Path(env["OUT"])
    work = Path(env["WORK"])
    py, tq = env.get("PY", "python3"), env["TORCH_QUALITY"]
    tpy = env.get("TORCH_PY", py)
    repeats = int(env.get("REPEATS", "3"))
    threads_list = [int(t) for t in env.get("THREADS", "1").split()]
    here = Path(__file__).resolve()
    repo = str(here.parent.parent)
    out.mkdir(parents=True, exist_ok=True)
    res = open(out / "e2e.jsonl", "a")

    def emit(obj: dict) -> None:
        line = json.dumps(obj)
        print(line, flush=True)
        res.write(line + "\n")
        res.flush()

    def thread_env(n: int) -> dict:
        v = str(n)
        return {**env, "PYTHONPATH": repo, "OMP_NUM_THREADS": v, "OPENBLAS_NUM_THREADS": v,
                "MKL_NUM_THREADS": v}

    # The validation text: tiny Shakespeare's last 10 %, cut as charlm's training cuts it,
    # written out so that both sides read the very same file; WikiText-2's own valid file.
    sys.path.insert(0, repo)
    from charlm.tasks.stream import split_validation
    text = (corpora / "tinyshakespeare.txt").read_text(encoding="utf-8")
    train_text, valid_text = split_validation(text, 0.1)
    (work / "ts_train.txt").write_text(train_text, encoding="utf-8")
    (work / "ts_valid.txt").write_text(valid_text, encoding="utf-8")
    wt = corpora / "wikitext-2"

    recipes = {
        "char": {
            "valid": work / "ts_valid.txt",
            "train": ["train", str(work / "ts_train.txt"), "--valid-fraction", "0",
                      "--hidden", "512", "--embed", "64", "--layers", "2", "--dropout", "0.2",
                      "--batch", "32", "--bptt", "128", "--eval-batch", "32"],
            "model": env.get("CHAR_MODEL", ""),
            "torch": ["--data", str(work / "ts_train.txt"), "--valid", str(work / "ts_valid.txt"),
                      "--embed", "64", "--hidden", "512", "--layers", "2", "--dropout", "0.2",
                      "--batch", "32", "--bptt", "128", "--eval-rows", "32",
                      "--eval-burnin", "256", "--eval-chunk", "512"],
        },
        "word": {
            "valid": wt / "valid.txt",
            "train": ["train", str(wt / "train.txt"), "--valid-fraction", "0", "--level", "word",
                      "--tokenizer", "whitespace", "--vocab-size", "10000", "--embed", "200",
                      "--hidden", "200", "--layers", "2", "--dropout", "0.2", "--batch", "20",
                      "--bptt", "35", "--eval-batch", "32"],
            "model": env.get("WORD_MODEL", ""),
            "torch": ["--level", "word", "--vocab-size", "10000", "--data", str(wt / "train.txt"),
                      "--valid", str(wt / "valid.txt"), "--embed", "200", "--hidden", "200",
                      "--layers", "2", "--dropout", "0.2", "--batch", "20", "--bptt", "35",
                      "--eval-rows", "32", "--eval-burnin", "256", "--eval-chunk", "128",
                      "--prime", "the"],
        },
    }
    # Models: the ones given, else one training step from the cells' initialisation (the
    # time of a pass does not depend on the weights). Not timed.
    for name, r in recipes.items():
        if not r["model"]:
            r["model"] = str(work / f"{name}.npz")
            subprocess.run([py, "-m", "charlm", *r["train"], "--steps", "1", "--out", r["model"],
                            "--force"], env=thread_env(2), check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r["model_kind"] = "given" if env.get(f"{name.upper()}_MODEL") else "one training step"

    def charlm_eval(name: str, pin: list[str], n: int) -> dict:
        r = recipes[name]
        tf = work / f"times_{name}_{n}.json"
        cmd = pin + [py, str(here), "cli", str(tf), "--", "eval", str(r["valid"]),
                     "--model", r["model"], "--json"]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, env=thread_env(n), capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode:
            raise SystemExit(f"charlm eval failed: {p.stderr[-2000:]}")
        ev = json.loads(p.stdout.strip().splitlines()[-1])
        t = json.loads(tf.read_text())
        return {"command_s": wall, "pass_s": t["pass_s"], "unk_pass_s": t["unk_s"],
                "tokens": t["tokens"], "nll": ev["nll"], "oov": ev["oov"]}

    def torch_eval(name: str, pin: list[str], n: int) -> dict:
        r = recipes[name]
        cmd = pin + [tpy, tq, *r["torch"], "--budget-seconds", "0", "--eval-every-seconds", "0",
                     "--sample-chars", "0", "--threads", str(n), "--tag", f"e2e-{name}"]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, env=thread_env(n), capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode:
            raise SystemExit(f"torch_quality.py failed: {p.stderr[-2000:]}")
        lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
        cfg = next(x for x in lines if x["type"] == "config")
        ev = next(x for x in lines if x["type"] == "eval")
        return {"eval_s": ev["eval_s"], "tokens": cfg["n_val_predictions"],
                "nll": ev["val_loss"], "process_s": wall, "torch": cfg["torch"]}

    def series(name: str, pin: list[str], n: int, results: dict) -> None:
        runs = {"charlm": [], "torch": []}
        for _ in range(repeats):                       # A B A B A B
            runs["charlm"].append(charlm_eval(name, pin, n))
            runs["torch"].append(torch_eval(name, pin, n))
        results[name] = runs

    def report(name: str, n: int, pin: list[str], runs: dict) -> dict:
        med = lambda side, key: statistics.median(x[key] for x in runs[side])  # noqa: E731
        c_pass, c_cmd = med("charlm", "pass_s"), med("charlm", "command_s")
        c_unk = med("charlm", "unk_pass_s")
        t_eval = med("torch", "eval_s")
        c_tok, t_tok = runs["charlm"][0]["tokens"], runs["torch"][0]["tokens"]
        row = {"type": "e2e", "recipe": name, "threads": n, "cores": " ".join(pin) or "any",
               "model": recipes[name]["model_kind"], "repeats": repeats,
               "charlm_pass_s": round(c_pass, 2), "charlm_eval_command_s": round(c_cmd, 2),
               "charlm_unk_pass_s": round(c_unk, 2), "torch_eval_s": round(t_eval, 2),
               "charlm_tokens": c_tok, "torch_tokens": t_tok,
               "charlm_pass_tokens_per_s": round(c_tok / c_pass),
               "torch_tokens_per_s": round(t_tok / t_eval),
               "time_ratio_pass": round(c_pass / t_eval, 3),
               "time_ratio_command": round(c_cmd / t_eval, 3),
               "speed_ratio_pass": round(t_eval / c_pass, 3),
               "speed_ratio_command": round(t_eval / c_cmd, 3),
               "runs": {k: [{a: (round(b, 3) if isinstance(b, float) else b) for a, b in x.items()}
                            for x in v] for k, v in runs.items()}}
        emit(row)
        return row

    table = []
    for n in threads_list:
        results: dict = {}
        # One thread: every run pinned to core 0; two threads: cores 0 and 1. One run at a
        # time, so no run shares the machine with another of this job's runs.
        pin = ["taskset", "-c", ",".join(str(i) for i in range(n))]
        for k in recipes:
            series(k, pin, n, results)
        for k in recipes:
            table.append(report(k, n, pin, results[k]))

    print("\n| recipe | threads | charlm pass s | charlm eval command s | PyTorch eval s "
          "| time ratio pass | time ratio command | speed ratio pass | speed ratio command |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in table:
        print(f"| {r['recipe']} | {r['threads']} | {r['charlm_pass_s']:.2f} | "
              f"{r['charlm_eval_command_s']:.2f} | {r['torch_eval_s']:.2f} | "
              f"{r['time_ratio_pass']:.2f} | {r['time_ratio_command']:.2f} | "
              f"{r['speed_ratio_pass']:.2f} | "
              f"{r['speed_ratio_command']:.2f} |")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "cli" and len(sys.argv) >= 4 and sys.argv[3] == "--":
        cli(sys.argv[2], sys.argv[4:])
    elif mode == "rows" and len(sys.argv) == 4:
        rows(sys.argv[2], sys.argv[3])
    elif mode == "run":
        run()
    else:
        sys.exit("usage: e2e_eval.py run | cli TIMES -- ARGS... | rows MODEL CORPUS")
