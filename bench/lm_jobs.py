"""Language-model jobs: charlm's throughput, its speed against PyTorch row by row, quality in a
fixed time against PyTorch, and evaluation end to end as a user waits for it."""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

from charlm.tasks.stream import split_validation

from .harness import Col, Harness, JobError, median, num

# The standard configs of `charlm bench` and of the reference script torch_ref.py:
# vocabulary, embedding, hidden, layers, batch, bptt.
SIZES = {"C1": (65, 64, 256, 2, 32, 64), "C2": (65, 128, 512, 2, 64, 128),
         "W1": (10000, 200, 200, 2, 20, 35)}
SPEED_ROWS = ["C1:rnn:train", "C1:gru:train", "C1:lstm:train", "C1:rnn:eval", "C1:gru:eval",
              "C1:lstm:eval", "C1:rnn:generate", "C1:gru:generate", "C1:lstm:generate",
              "C2:lstm:train", "W1:lstm:train", "W1:lstm:eval"]


# --------------------------------------------------------------------- throughput
def throughput_options(p) -> None:
    p.add_argument("--config", action="append", choices=["C1", "C2", "W1", "MC"],
                   help="one config (repeat for several) [default: all]")
    p.add_argument("--cell", action="append", choices=["rnn", "gru", "lstm"])
    p.add_argument("--mode", action="append", choices=["train", "eval", "generate"])
    p.add_argument("--steps", type=int, default=20, help="timed steps per row (median)")


def throughput(h: Harness, a) -> None:
    """`charlm bench`: tokens/s of training, evaluation and generation on this machine."""
    flags = [f"--{k}={v}" for k in ("config", "cell", "mode") for v in getattr(a, k) or []]
    rows = h.run(h.charlm("bench", "--json", "--steps", a.steps, *flags))
    h.table(rows, [Col("config", lambda r: r["config"], True),
                   Col("cell", lambda r: r["cell"], True),
                   Col("mode", lambda r: r["mode"], True),
                   Col("tokens/s", lambda r: num(r["tokens_per_s"])),
                   Col("GFLOP/s", lambda r: f"{r['gflops']:.1f}"),
                   Col("% of NumPy's matmul peak", lambda r: f"{r['pct_of_peak']:.0f}"),
                   Col("peak RSS MB", lambda r: num(r["peak_rss_mb"]))],
            title=f"charlm bench, float32 matmul peak {rows[0]['peak_sgemm_gflops']:.0f} "
                  "GFLOP/s" if rows else "")


# --------------------------------------------------------------------- speed
def speed_options(p) -> None:
    p.add_argument("rows", nargs="*", metavar="CONFIG:CELL:MODE",
                   help="rows such as C1:lstm:eval or MC:rnn:train [default: "
                        + " ".join(SPEED_ROWS) + "]")
    p.add_argument("--steps", type=int, default=20, help="timed steps per train/eval run")
    p.add_argument("--repeats", type=int, default=3, help="alternated runs of each side")
    p.add_argument("--torch-threads", type=int, default=2, help="PyTorch's intra-op threads")
    p.add_argument("--base", metavar="DIR",
                   help="another charlm checkout, measured as a third side (a 'before')")
    p.add_argument("--bound", action="store_true",
                   help="train and eval rows: also the time of the matrix products alone "
                        "(bench/product_bound.py, median of three runs of 30 batches)")


def speed(h: Harness, a) -> None:
    """charlm bench against PyTorch's torch_ref.py (and min-char-rnn's minchar_ref.py for MC),
    row by row, alternately --repeats times; medians and ratios. Generation: PyTorch's better
    of oneDNN on and off."""
    rows = a.rows or SPEED_ROWS
    for row in rows:
        parts = row.split(":")
        if len(parts) != 3 or parts[0] not in (*SIZES, "MC"):
            raise JobError(f"row {row!r}: give CONFIG:CELL:MODE, e.g. C1:lstm:eval.")
    base = str(Path(a.base).resolve()) if a.base else None

    def charlm(cfg, cell, mode, where=None):
        env = h.env()
        if where:                 # the other checkout's charlm, run from its own folder
            env["PYTHONPATH"] = where
        r = h.run(h.charlm("bench", "--config", cfg, "--cell", cell, "--mode", mode,
                           "--steps", a.steps, "--json"), env=env, cwd=where, record=False,
                  echo=False)
        return r[-1]["tokens_per_s"]

    def torch(cfg, cell, mode, mkldnn):
        if cfg == "MC":
            cmd = [h.torch_python, h.reference("minchar_ref.py"), "--mode", mode, "--json"]
            return h.run(cmd, record=False, echo=False)[-1]["tokens_per_s"]
        V, E, H, L, B, T = SIZES[cfg]
        cmd = [h.torch_python, h.reference("torch_ref.py"), "--cell", cell, "--vocab", V,
               "--embed", E, "--hidden", H, "--layers", L, "--batch", B, "--bptt", T,
               "--steps", a.steps, "--mode", mode, "--mkldnn", mkldnn,
               "--threads", a.torch_threads, "--json"]
        r = h.run(cmd, record=False, echo=False)[-1]
        return r["tokens_per_s"] if mode == "generate" else r["tokens_per_s_median_step"]

    table = []
    for row in rows:
        cfg, cell, mode = row.split(":")
        ours, before, theirs = [], [], {"on": [], "off": []}
        for _ in range(a.repeats):                      # A B A B A B (C A B ... with --base)
            if base:
                before.append(charlm(cfg, cell, mode, base))
            ours.append(charlm(cfg, cell, mode))
            for k in (("on", "off") if mode == "generate" and cfg != "MC" else ("on",)):
                theirs[k].append(torch(cfg, cell, mode, k))
        best, how = max((median(v), k) for k, v in theirs.items() if v)
        line = {"row": row, "charlm": ours, "torch": {k: v for k, v in theirs.items() if v},
                "charlm_median": median(ours), "torch_median": best, "torch_mkldnn": how,
                "ratio": median(ours) / best}
        if before:
            line.update(before=before, before_median=median(before),
                        before_ratio=median(before) / best)
        if a.bound and mode != "generate" and cfg in SIZES:
            products = median(h.run(h.py("product_bound.py", "--config", cfg, "--cell", cell,
                                         "--mode", mode, "--json"), record=False,
                                    echo=False)[-1]["products_ms_per_batch"] for _ in range(3))
            batch_ms = 1e3 * SIZES[cfg][4] * SIZES[cfg][5] / line["charlm_median"]
            line.update(products_ms=products, batch_ms=batch_ms, rest_ms=batch_ms - products,
                        products_ratio=batch_ms / products * line["ratio"])
        h.record(line)
        print(line, flush=True)
        table.append(line)
    cols = [Col("row", lambda r: r["row"].replace(":", " "), True),
            Col("charlm tokens/s", lambda r: num(r["charlm_median"])),
            Col("PyTorch tokens/s", lambda r: num(r["torch_median"])),
            Col("ratio", lambda r: f"{r['ratio']:.2f}")]
    if base:
        cols += [Col("before tokens/s", lambda r: num(r["before_median"])),
                 Col("ratio before", lambda r: f"{r['before_ratio']:.2f}")]
    if a.bound:
        cols += [Col("charlm ms per batch", lambda r: f"{r['batch_ms']:.2f}"),
                 Col("products alone ms", lambda r: f"{r['products_ms']:.2f}"),
                 Col("the rest ms", lambda r: f"{r['rest_ms']:.2f}"),
                 Col("ratio if the rest took no time", lambda r: f"{r['products_ratio']:.2f}")]
    h.table(table, cols, title=f"medians of {a.repeats} alternated runs; PyTorch "
                               f"{a.torch_threads} threads")


# --------------------------------------------------------------------- quality
QUALITY = {
    # corpus: charlm train options, reference options, budget s, charlm eval-every steps,
    # reference eval-every s
    "shakespeare": (["--hidden", 512, "--embed", 64, "--layers", 2, "--dropout", 0.2,
                     "--batch", 32, "--bptt", 128, "--lr", 2e-3],
                    ["--embed", 64, "--hidden", 512, "--layers", 2, "--dropout", 0.2,
                     "--batch", 32, "--bptt", 128, "--lr", 2e-3], 600, 150, 60),
    "wikitext2": (["--level", "word", "--tokenizer", "whitespace", "--vocab-size", 10000,
                   "--embed", 200, "--hidden", 200, "--layers", 2, "--dropout", 0.2,
                   "--batch", 20, "--bptt", 35, "--lr", 2e-3],
                  ["--level", "word", "--vocab-size", 10000, "--embed", 200, "--hidden", 200,
                   "--layers", 2, "--dropout", 0.2, "--batch", 20, "--bptt", 35, "--lr", 2e-3,
                   "--eval-chunk", 128, "--prime", "the"], 330, 1500, 110),
}


def quality_options(p) -> None:
    p.add_argument("--corpus", choices=sorted(QUALITY), default="shakespeare",
                   help="tiny Shakespeare (its last 10 %% validates) or WikiText-2 (its own "
                        "valid file)")
    p.add_argument("--seed", type=int, default=None,
                   help="both sides' seed [default: each tool's own, charlm 1234, PyTorch 0]")


def quality(h: Harness, a) -> None:
    """What a model reaches in a fixed wall-clock budget: charlm and PyTorch's torch_quality.py
    at the same time, charlm on core 0 and PyTorch on core 1, one thread each; charlm's figure
    is what `charlm eval` prints for the validation text."""
    ours, theirs, budget, every, t_every = QUALITY[a.corpus]
    budget = h.scaled(budget, 5)
    every = max(20, round(every * h.scale))
    t_every = h.scaled(t_every, 5)
    seed = [] if a.seed is None else ["--seed", a.seed]
    with tempfile.TemporaryDirectory() as work:
        w = Path(work)
        if a.corpus == "shakespeare":
            corpus = h.corpus("tinyshakespeare.txt")
            valid = w / "valid.txt"            # the last 10 %, cut as charlm's training cuts it
            valid.write_text(split_validation(Path(corpus).read_text(encoding="utf-8"),
                                              0.1)[1], encoding="utf-8")
            data = [corpus]
            ref = ["--data", corpus]
        else:
            corpus, valid = h.corpus("wikitext-2/train.txt"), h.corpus("wikitext-2/valid.txt")
            data = [corpus, "--valid", valid]
            ref = ["--data", corpus, "--valid", valid]
        model = w / "model.npz"
        mine = h.start(h.charlm("train", *data, *ours, "--time", f"{budget}s",
                                "--eval-every", every, "--out", model, *seed),
                       cores="0", threads=1)
        ref_cmd = [h.torch_python, h.reference("torch_quality.py"), *ref, *theirs,
                   "--budget-seconds", budget, "--eval-every-seconds", t_every,
                   "--threads", 1, "--tag", f"quality-{a.corpus}", *seed]
        other = h.start(ref_cmd, cores="1", threads=1)
        h.wait(mine)
        t_rows = h.wait(other)
        ev = h.run(h.charlm("eval", valid, "--model", model, "--json"), threads=1, cores="0")[-1]
        info = h.run(h.charlm("info", "--model", model, "--json"), record=False,
                     echo=False)[-1]
    final = next(r for r in reversed(t_rows) if r.get("type") == "final")
    rows = [{"side": "charlm", "nll": ev["nll"], "tokens": info["tokens_seen"],
             "steps": info["steps"]},
            {"side": "PyTorch", "nll": final["best_val_loss"],
             "tokens": final["train_tokens_seen"], "steps": final["steps"]}]
    word = a.corpus == "wikitext2"
    h.table(rows, [Col("side", lambda r: r["side"], True),
                   Col("validation nats/token", lambda r: f"{r['nll']:.3f}"),
                   Col("perplexity" if word else "bits/char",
                       lambda r: f"{math.exp(r['nll']):.1f}" if word
                       else f"{r['nll'] / math.log(2):.3f}"),
                   Col("tokens trained", lambda r: num(r["tokens"])),
                   Col("steps", lambda r: num(r["steps"]))],
            title=f"{a.corpus}, {budget:g} s of training each, one core and one thread each")


# --------------------------------------------------------------------- end to end
E2E = {
    "char": (["--hidden", 512, "--embed", 64, "--layers", 2, "--dropout", 0.2, "--batch", 32,
              "--bptt", 128, "--eval-batch", 32],
             ["--embed", 64, "--hidden", 512, "--layers", 2, "--dropout", 0.2, "--batch", 32,
              "--bptt", 128, "--eval-rows", 32, "--eval-burnin", 256, "--eval-chunk", 512]),
    "word": (["--level", "word", "--tokenizer", "whitespace", "--vocab-size", 10000,
              "--embed", 200, "--hidden", 200, "--layers", 2, "--dropout", 0.2, "--batch", 20,
              "--bptt", 35, "--eval-batch", 32],
             ["--level", "word", "--vocab-size", 10000, "--embed", 200, "--hidden", 200,
              "--layers", 2, "--dropout", 0.2, "--batch", 20, "--bptt", 35, "--eval-rows", 32,
              "--eval-burnin", 256, "--eval-chunk", 128, "--prime", "the"]),
}


def e2e_options(p) -> None:
    p.add_argument("--thread-counts", default="1", metavar="N[,N]",
                   help="thread counts to measure, e.g. 1,2 (N threads run on cores 0..N-1)")
    p.add_argument("--repeats", type=int, default=3, help="alternated runs of each side")
    p.add_argument("--char-model", help="a model file for the char recipe [default: one "
                                        "training step from initialisation]")
    p.add_argument("--word-model", help="the same for the word recipe")


def e2e(h: Harness, a) -> None:
    """Evaluation as a user waits for it, on the two recipes of `quality`: charlm's validation
    pass, the whole `charlm eval` process, and torch_quality.py's own evaluation of a model of
    the same size on the same text, alternately, one run at a time (bench/e2e_eval.py says
    exactly what each time covers)."""
    counts = [int(n) for n in a.thread_counts.split(",")]
    with tempfile.TemporaryDirectory() as work:
        w = Path(work)
        text = Path(h.corpus("tinyshakespeare.txt")).read_text(encoding="utf-8")
        train, valid = split_validation(text, 0.1)
        (w / "ts_train.txt").write_text(train, encoding="utf-8")
        (w / "ts_valid.txt").write_text(valid, encoding="utf-8")
        files = {"char": (str(w / "ts_train.txt"), str(w / "ts_valid.txt")),
                 "word": (h.corpus("wikitext-2/train.txt"), h.corpus("wikitext-2/valid.txt"))}
        models = {"char": a.char_model, "word": a.word_model}
        for name, (train_file, _) in files.items():   # the time does not depend on the weights
            if not models[name]:
                models[name] = str(w / f"{name}.npz")
                h.run(h.charlm("train", train_file, "--valid-fraction", 0, *E2E[name][0],
                               "--steps", 1, "--out", models[name], "--force"),
                      stderr=open(w / "train.log", "a"), record=False, echo=False)

        def charlm_eval(name, cores, n):
            times = w / f"times_{name}_{n}.json"
            cmd = h.py("e2e_eval.py", "cli", times, "--", "eval", files[name][1],
                       "--model", models[name], "--json")
            t0 = time.perf_counter()
            ev = h.run(cmd, cores=cores, threads=n, record=False, echo=False)[-1]
            wall = time.perf_counter() - t0
            t = json.loads(times.read_text())
            return {"command_s": wall, "pass_s": t["pass_s"], "tokens": t["tokens"],
                    "nll": ev["nll"]}

        def torch_eval(name, cores, n):
            train_file, valid_file = files[name]
            cmd = [h.torch_python, h.reference("torch_quality.py"), "--data", train_file,
                   "--valid", valid_file, *E2E[name][1], "--budget-seconds", 0,
                   "--eval-every-seconds", 0, "--sample-chars", 0, "--threads", n,
                   "--tag", f"e2e-{name}"]
            lines = h.run(cmd, cores=cores, threads=n, record=False, echo=False)
            cfg = next(x for x in lines if x["type"] == "config")
            ev = next(x for x in lines if x["type"] == "eval")
            return {"eval_s": ev["eval_s"], "tokens": cfg["n_val_predictions"],
                    "nll": ev["val_loss"]}

        table = []
        for n in counts:
            cores = ",".join(str(i) for i in range(n))
            for name in files:
                runs = {"charlm": [], "torch": []}
                for _ in range(a.repeats):              # A B A B A B
                    runs["charlm"].append(charlm_eval(name, cores, n))
                    runs["torch"].append(torch_eval(name, cores, n))
                c_pass = median(x["pass_s"] for x in runs["charlm"])
                c_cmd = median(x["command_s"] for x in runs["charlm"])
                t_eval = median(x["eval_s"] for x in runs["torch"])
                row = {"recipe": name, "threads": n, "charlm_pass_s": c_pass,
                       "charlm_eval_command_s": c_cmd, "torch_eval_s": t_eval,
                       "charlm_pass_tokens_per_s": runs["charlm"][0]["tokens"] / c_pass,
                       "torch_tokens_per_s": runs["torch"][0]["tokens"] / t_eval,
                       "speed_ratio_pass": t_eval / c_pass, "speed_ratio_command": t_eval / c_cmd,
                       "runs": runs}
                h.record(row)
                table.append(row)
    h.table(table, [Col("recipe", lambda r: r["recipe"], True),
                    Col("threads", lambda r: r["threads"]),
                    Col("charlm pass s", lambda r: f"{r['charlm_pass_s']:.2f}"),
                    Col("charlm eval command s", lambda r: f"{r['charlm_eval_command_s']:.2f}"),
                    Col("PyTorch evaluation s", lambda r: f"{r['torch_eval_s']:.2f}"),
                    Col("speed ratio pass", lambda r: f"{r['speed_ratio_pass']:.2f}"),
                    Col("speed ratio command", lambda r: f"{r['speed_ratio_command']:.2f}")],
            title=f"medians of {a.repeats} alternated runs, one run at a time")
