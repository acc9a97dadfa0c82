#!/usr/bin/env python3
"""Per-task defaults against the textbook PyTorch models: one command, one table.

    python bench/task_defaults.py --corpora CORPORA [--budget 60] \
        [--rows torch,defaults,lm,candidates] [--tasks classify,tag] [--json out.jsonl]

Every run trains for --budget seconds on one core with one thread (OPENBLAS_NUM_THREADS=1,
the process pinned to its core), two runs at a time (one per core), so a charlm run and a
PyTorch run share the machine the same way. charlm's runs go through ``charlm.train`` exactly
as ``charlm train --task T FILE --time 60s`` does: the row ``defaults`` gives no option at
all (the task's defaults), ``LM defaults`` the options a task inherited from the language
model before it had its own, and ``candidates`` the configurations the defaults were chosen
from.

- classify: MR (``classify/mr``, 10,662 snippets) and the UCI sentences
  (``classify/uci-sentences``, 3,000). Test = fold 1 of charlm's seeded stratified 10 folds
  (a seeded 90/10 split); the other 90 % is the training file, of which a run keeps its
  default 10 % for validation (best parameters by accuracy). Figure: test accuracy.
  PyTorch: ``bench/torch_classifier.py --bidirectional --folds 10 --max-folds 1`` (word
  embeddings, one bidirectional LSTM layer, Adam, the protocol's sizes): the same test fold,
  the same inner validation split, the same vocabulary and batches.
- tag: BTC and WNUT-17, train -> dev; dev is also the validation file that keeps the best
  parameters (both sides), as in bench/tag_run.py. Figure: dev entity F1.
  PyTorch: ``bench/torch_tagger.py --bidirectional`` (word embeddings, one bidirectional
  LSTM layer, Adam, the protocol's sizes).

Options for the other measurements of docs/benchmarks.md: ``--epochs N`` trains charlm's rows
for N epochs instead of the budget (the same work however busy the machine is: no lock on
time needed); ``--folds K`` (classify) runs K-fold cross-validation instead of the one split;
``--init-from LM.npz`` adds the rows "defaults + --init-from" and "defaults at the LM's shape"
(the shape and text options that --init-from takes from the LM, from scratch);
``--lm-features LM[,LM]`` the row "defaults + --lm-features" (frozen character LMs' states
beside each word's embedding); ``--datasets``
and ``--configs`` pick rows by name.

Prints one JSON line per run as it finishes, then the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ONE_CORE = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# What --task classify and --task tag inherited from the language model before they had
# defaults of their own (ModelConfig's and TrainConfig's: char level, 2x512 LSTM, lr 2e-3,
# eval every 500 steps); a tagger was already word level.
LM_DEFAULTS = {"classify": {"level": "char", "bidirectional": False, "hidden": 512,
                            "embed": 64, "layers": 2, "dropout": 0.2, "lr": 2e-3,
                            "batch": 32, "eval_every": 500, "pool": "last"},
               "tag": {"level": "word", "bidirectional": False, "hidden": 512, "embed": 64,
                       "layers": 2, "dropout": 0.2, "lr": 2e-3, "batch": 32,
                       "eval_every": 500, "char_embed": 0, "char_hidden": 0,
                       "min_count": 1}}

# The configurations the defaults were chosen from (one core, 60 s, seed 1234). Each names
# every option that a task's DEFAULTS set, so that it stays the same whatever they are.
CANDIDATES = {
    "classify": {
        "bi 64": {"level": "word", "bidirectional": True, "embed": 64, "hidden": 64,
                  "layers": 1, "dropout": 0.5, "lr": 5e-3, "batch": 32, "eval_every": 100,
                  "pool": "last"},
        "uni 64": {"level": "word", "bidirectional": False, "embed": 64, "hidden": 64,
                   "layers": 1, "dropout": 0.5, "lr": 5e-3, "batch": 32, "eval_every": 100,
                   "pool": "last"},
        "bi 64 max-pool": {"level": "word", "bidirectional": True, "embed": 64,
                           "hidden": 64, "layers": 1, "dropout": 0.5, "lr": 5e-3,
                           "batch": 32, "eval_every": 100, "pool": "max"},
        "bi 128": {"level": "word", "bidirectional": True, "embed": 128, "hidden": 128,
                   "layers": 1, "dropout": 0.5, "lr": 3e-3, "batch": 32, "eval_every": 100,
                   "pool": "last"},
        "uni 64 max-pool": {"level": "word", "bidirectional": False, "embed": 64,
                            "hidden": 64, "layers": 1, "dropout": 0.5, "lr": 5e-3,
                            "batch": 32, "eval_every": 100, "pool": "max"},
        "bi 64 mean-pool": {"level": "word", "bidirectional": True, "embed": 64,
                            "hidden": 64, "layers": 1, "dropout": 0.5, "lr": 5e-3,
                            "batch": 32, "eval_every": 100, "pool": "mean"},
    },
    "tag": {
        "bi 128 + chars": {"bidirectional": True, "embed": 64, "hidden": 128, "layers": 1,
                           "dropout": 0.3, "lr": 3e-3, "batch": 32, "min_count": 2,
                           "char_embed": 25, "char_hidden": 25, "eval_every": 100},
        "bi 128": {"bidirectional": True, "embed": 64, "hidden": 128, "layers": 1,
                   "dropout": 0.3, "lr": 3e-3, "batch": 32, "min_count": 2,
                   "eval_every": 100},
        "bi 64 + chars": {"bidirectional": True, "embed": 64, "hidden": 64, "layers": 1,
                          "dropout": 0.3, "lr": 5e-3, "batch": 32, "min_count": 2,
                          "char_embed": 25, "char_hidden": 25, "eval_every": 100},
        "bi 128 + chars min-count 1": {"bidirectional": True, "embed": 64, "hidden": 128,
                                        "layers": 1, "dropout": 0.3, "lr": 3e-3,
                                        "batch": 32, "min_count": 1, "char_embed": 25,
                                        "char_hidden": 25, "eval_every": 100},
        "bi 64 + chars min-count 1": {"bidirectional": True, "embed": 64, "hidden": 64,
                                       "layers": 1, "dropout": 0.3, "lr": 5e-3, "batch": 32,
                                       "min_count": 1, "char_embed": 25, "char_hidden": 25,
                                       "eval_every": 100},
        "bi 64 + chars lr 3e-3": {"bidirectional": True, "embed": 64, "hidden": 64,
                                   "layers": 1, "dropout": 0.3, "lr": 3e-3, "batch": 32,
                                   "min_count": 2, "char_embed": 25, "char_hidden": 25,
                                   "eval_every": 100},
    },
}


def datasets(corpora: Path) -> dict:
    mr, uci = corpora / "classify/mr", corpora / "classify/uci-sentences"
    tg = corpora / "tagging"
    return {
        "classify": {
            "MR": {"classes": [f"pos={mr}/rt-polarity.pos", f"neg={mr}/rt-polarity.neg"]},
            "UCI": {"files": [str(uci / f) for f in ("amazon_cells_labelled.txt",
                                                     "imdb_labelled.txt",
                                                     "yelp_labelled.txt")]},
        },
        "tag": {
            "BTC": {"train": str(tg / "btc/btc.train"), "dev": str(tg / "btc/btc.dev")},
            "WNUT-17": {"train": str(tg / "wnut17/wnut17train.conll"),
                        "dev": str(tg / "wnut17/emerging.dev.conll")},
        },
    }


# ------------------------------------------------------------------ one run
def run_charlm(job: dict) -> dict:
    """One charlm run (in its own process, on its own core): train as `charlm train` does,
    then the figure on the held-out part."""
    import numpy as np

    import charlm
    from charlm.tasks.classify import label_ids, stratified_folds
    from charlm.text.labelled import label_set, read_examples

    opts = dict(job["options"])
    init = opts.pop("init_from", None)
    if init:
        opts["init_from"] = init
    with tempfile.TemporaryDirectory(prefix="taskdefaults") as tmp:
        out = Path(tmp) / "model.npz"
        seen = {"epochs": 0.0}

        def count(e):
            if e["kind"] == "step":
                seen["epochs"] = e["epoch"] + e["window"] / e["windows"]
        t0 = time.perf_counter()
        if job["task"] == "classify" and job.get("folds"):
            from charlm.training.folds import cross_validate_run
            d = job["data"]
            cv = cross_validate_run(d.get("files") or None, folds=job["folds"],
                                    max_folds=job.get("max_folds", 0), final=False,
                                    task="classify", classes=d.get("classes"), out=out,
                                    seed=job["seed"], **limit(job), **opts)
            rows = cv["per_fold"]
            return {"figure": cv["mean_accuracy"], "sd": cv["sd_accuracy"],
                    "folds_run": len(rows), "per_fold": [r["accuracy"] for r in rows],
                    "steps": round(sum(r["steps"] for r in rows) / len(rows)),
                    "epochs": sum(r["epochs"] for r in rows) / len(rows),
                    "valid_mean": sum(r["best_valid_accuracy"] for r in rows) / len(rows),
                    "wall_s": time.perf_counter() - t0}
        if job["task"] == "classify":
            d = job["data"]
            ex = read_examples(d.get("files", []), d.get("classes", []))
            y = label_ids(ex.labels, label_set(ex.labels))
            test = stratified_folds(y, 10, job["seed"])[0]
            train = np.setdiff1d(np.arange(len(y)), test)
            path = Path(tmp) / "train.tsv"
            path.write_text("".join(f"{ex.labels[i]}\t{ex.texts[i]}\n" for i in train),
                            encoding="utf-8")
            clf = charlm.train(path, task="classify", out=out, seed=job["seed"], callback=count,
                               **limit(job), **opts)
            figure = clf.evaluate(ex.subset(test))["accuracy"]
            model = clf.model
        else:
            d = job["data"]
            tagger = charlm.train(d["train"], task="tag", valid=d["dev"], out=out,
                                  seed=job["seed"], callback=count, **limit(job), **opts)
            figure = tagger.evaluate(d["dev"])["entities"]["f1"]
            model = tagger.model
        wall = time.perf_counter() - t0
        meta = json.loads(str(np.load(out)["meta"]))
    run = meta["train"]["run"]
    used = {k: v for k, v in {**meta["train"]["config"], **model.config.to_json()}.items()
            if k in ("level", "bidirectional", "hidden", "embed", "layers", "dropout",
                     "input_dropout", "lr", "batch", "char_hidden", "min_count", "pool",
                     "eval_every")}
    return {"figure": figure, "steps": run["step"], "epochs": seen["epochs"],
            "wall_s": wall, "used": used,
            "init_from": meta["train"]["config"].get("init_from")}


def limit(job: dict) -> dict:
    """The run's limit: --epochs when given (the same work whatever the machine does
    meanwhile), else the time budget."""
    return {"epochs": job["epochs"]} if job.get("epochs") else {"time_budget": job["budget"]}


def torch_command(job: dict) -> list[str]:
    d, b, s = job["data"], str(job["budget"]), str(job["seed"])
    if job["task"] == "classify":
        args = [str(HERE / "torch_classifier.py"), *d.get("files", [])]
        for c in d.get("classes", []):
            args += ["--class", c]
        folds, most = (job["folds"], job["max_folds"]) if job.get("folds") else (10, 1)
        return args + ["--bidirectional", "--folds", str(folds), "--max-folds", str(most),
                       "--budget", b, "--seed", s]
    return [str(HERE / "torch_tagger.py"), "--train", d["train"], "--dev", d["dev"],
            "--bidirectional", "--budget", b, "--seed", s]


def torch_result(lines: list[str], task: str) -> dict:
    rows = [json.loads(x) for x in lines if x.startswith("{")]
    if task == "classify":
        folds = [x for x in rows if "fold" in x]
        summary = next(x for x in rows if x.get("summary"))
        out = {"figure": summary["mean_accuracy"],
               "steps": round(sum(r["steps"] for r in folds) / len(folds)),
               "epochs": sum(r["epochs"] for r in folds) / len(folds)}
        if len(folds) > 1:
            out.update(sd=summary["sd_accuracy"], folds_run=len(folds),
                       per_fold=[r["accuracy"] for r in folds])
        return out
    r = rows[-1]
    return {"figure": r["f1"], "steps": r["steps"], "epochs": None}


# ---------------------------------------------------------------- the table
def plan(a) -> list[dict]:
    jobs = []
    for task in a.tasks.split(","):
        for name, data in datasets(Path(a.corpora))[task].items():
            rows = a.rows.split(",")
            configs = {"defaults": {}} if "defaults" in rows else {}
            if "lm" in rows:
                configs["LM defaults"] = LM_DEFAULTS[task]
            if "candidates" in rows:
                configs.update(CANDIDATES[task])
            if a.configs:
                keep = a.configs.split(",")
                configs = {c: o for c, o in configs.items() if c in keep}
            if a.init_from and task in a.init_from_tasks.split(","):
                # the same shape and text options from scratch: what the LM alone changes
                configs["defaults at the LM's shape"] = lm_shape(a.init_from)
                configs["defaults + --init-from"] = {"init_from": a.init_from}
            if a.lm_features and task in a.init_from_tasks.split(","):
                configs["defaults + --lm-features"] = {"lm_features": a.lm_features}
            if a.datasets and name not in a.datasets.split(","):
                continue
            base = {"task": task, "dataset": name, "data": data, "budget": a.budget,
                    "seed": a.seed, "folds": a.folds, "max_folds": a.max_folds,
                    "epochs": a.epochs}
            if "torch" in rows:
                jobs.append({**base, "impl": "torch", "config": "PyTorch BiLSTM"})
            jobs += [{**base, "impl": "charlm", "config": c, "options": {**o, **a.set}}
                     for c, o in configs.items()]
    return jobs


def lm_shape(path: str) -> dict:
    """The options a run started from the LM in ``path`` takes from it."""
    from charlm.training.checkpoint import load
    from charlm.training.runs import lm_options
    return lm_options(load(path)[0])


def launch(job: dict, core: int, python: str):
    env = {**os.environ, **ONE_CORE,
           "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = ([python, str(HERE / "task_defaults.py"), "--one", json.dumps(job)]
           if job["impl"] == "charlm" else [python, *torch_command(job)])
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=str(HERE),
                            preexec_fn=lambda: os.sched_setaffinity(0, {core}))


def run_all(jobs: list[dict], cores: list[int], python: str, sink) -> list[dict]:
    """Two at a time (one per core), a PyTorch run beside a charlm one where there is one."""
    queue, running, done = list(jobs), {}, []
    while queue or running:
        for core in cores:
            if core not in running and queue:
                job = queue.pop(0)
                running[core] = (job, launch(job, core, python), time.time())
        time.sleep(0.5)
        for core, (job, proc, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[core]
            out, err = proc.communicate()
            row = {k: job[k] for k in ("task", "dataset", "impl", "config", "budget", "seed")}
            row["options"] = job.get("options")
            if proc.returncode != 0:
                row["error"] = err.strip().splitlines()[-1:] or ["exit %d" % proc.returncode]
            else:
                lines = out.strip().splitlines()
                row.update(json.loads(lines[-1]) if job["impl"] == "charlm"
                           else torch_result(lines, job["task"]))
            row["core"], row["seconds"] = core, time.time() - t0
            print(json.dumps(row), flush=True)
            if sink is not None:
                sink.write(json.dumps(row) + "\n")
                sink.flush()
            done.append(row)
    return done


def table(rows: list[dict]) -> str:
    out = ["| task | data | model | figure | steps | epochs |", "|---|---|---|---:|---:|---:|"]
    for r in rows:
        what = "test accuracy" if r["task"] == "classify" else "dev entity F1"
        if r.get("folds_run"):
            what = (f"± {100 * r['sd']:.2f}, mean held-out accuracy of {r['folds_run']} "
                    "folds")
        fig = (f"{100 * r['figure']:.2f} % {what}" if "figure" in r
               else "failed: " + " ".join(r.get("error", [])))
        ep = f"{r['epochs']:.1f}" if r.get("epochs") is not None else ""
        impl = "PyTorch BiLSTM" if r["impl"] == "torch" else f"charlm {r['config']}"
        out.append(f"| {r['task']} | {r['dataset']} | {impl} | {fig} | {r.get('steps', '')} "
                   f"| {ep} |")
    return "\n".join(out)


def option_value(text: str, parser) -> tuple[str, object]:
    """``--set embed=64`` -> ("embed", 64): the value read as JSON where it is (numbers,
    true/false), else kept as text."""
    key, eq, value = text.partition("=")
    if not eq or not key:
        parser.error(f"--set takes OPTION=VALUE (got {text!r})")
    try:
        return key.strip().replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.strip().replace("-", "_"), value


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpora", default=os.environ.get("CORPORA"),
                   help="The folder with classify/ and tagging/ (default: $CORPORA).")
    p.add_argument("--budget", type=float, default=60.0, help="Training seconds per run.")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--epochs", type=int, default=0,
                   help="charlm rows: train this many epochs instead of --budget seconds "
                        "(PyTorch rows keep the budget).")
    p.add_argument("--tasks", default="classify,tag")
    p.add_argument("--rows", default="torch,defaults,lm",
                   help="Which rows, comma-separated: torch (the PyTorch BiLSTM), defaults "
                        "(charlm with no option), lm (the language model's defaults, what "
                        "the tasks had before), candidates (what the defaults were chosen "
                        "from).")
    p.add_argument("--datasets", default=None,
                   help="Only these data sets (MR, UCI, BTC, WNUT-17; comma-separated).")
    p.add_argument("--folds", type=int, default=0,
                   help="classify: K-fold cross-validation (mean held-out accuracy) instead "
                        "of the one 90/10 split (charlm rows only).")
    p.add_argument("--max-folds", type=int, default=0, help="Only the first N of the folds.")
    p.add_argument("--configs", default=None,
                   help="Only these rows of charlm (their names, comma-separated).")
    p.add_argument("--init-from", default=None,
                   help="A word-level language model: adds a row 'defaults + --init-from'.")
    p.add_argument("--lm-features", default=None,
                   help="Character language models (comma-separated; 'starter' = the bundled "
                        "one): adds a row 'defaults + --lm-features'.")
    p.add_argument("--init-from-tasks", default="classify,tag",
                   help="The tasks that get the --init-from and --lm-features rows.")
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                   help="An option for every charlm row, as charlm.train takes it (e.g. "
                        "embed=64, input_dropout=0); repeat for more.")
    p.add_argument("--cores", default="0,1", help="The cores to run on, one run each.")
    p.add_argument("--json", default=None, help="Also write the JSON lines here.")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one is not None:   # one run, started by this script with its data paths
        print(json.dumps(run_charlm(json.loads(a.one))), flush=True)
        return 0
    if not a.corpora:
        p.error("give --corpora DIR (or set $CORPORA): the folder with classify/ and tagging/")
    a.set = dict(option_value(s, p) for s in a.set)
    if a.init_from:
        a.init_from = str(Path(a.init_from).resolve())
    if a.lm_features:
        a.lm_features = ",".join(p if p == "starter" else str(Path(p).resolve())
                                 for p in a.lm_features.split(","))
    cores = [int(c) for c in a.cores.split(",")]
    sink = open(a.json, "a", encoding="utf-8") if a.json else None
    try:
        rows = run_all(plan(a), cores, sys.executable, sink)
    finally:
        if sink is not None:
            sink.close()
    what = f"{a.epochs} epochs" if a.epochs else f"{a.budget:g} s of training"
    print(f"\n{what} per run, one core and one thread each, seed {a.seed}:\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
