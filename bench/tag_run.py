"""One charlm tagging run in a wall-clock budget, as a JSON line (for bench/job_tag_charlm.sh).

    python bench/tag_run.py --train TRAIN.conll --dev DEV.conll [--bidirectional] \
        --budget 80 --hidden 128 --embed 64 --json

Trains with the library's one trainer (evaluating on DEV every --eval-every steps and keeping
the best entity F1), then reports: dev entity F1 overall and for persons (PER / person),
token accuracy, training tokens per second (time inside training steps only), tagging tokens
per second (the dev set, batches of 64), and the process's peak RSS. ``--lm`` instead trains a
word-level language model on the same sentences with the same batch (m sentences × the longest
tagging batch's T steps) for a few steps and reports its peak RSS: the memory yardstick.
Run each configuration in its own process (peak RSS is per process).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    from protocol import tagging_args  # beside this script: the options both sides share
    tagging_args(ap)
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--lm-features", default=None, help="fwd.npz,bwd.npz: LM features.")
    ap.add_argument("--lm", action="store_true", help="The language model's memory instead.")
    ap.add_argument("--lm-steps", type=int, default=10)
    args = ap.parse_args()

    from charlm.nn.model import Model, ModelConfig
    from charlm.tasks.lm import LMTask
    from charlm.tasks.sentences import epoch_batches
    from charlm.tasks.stream import prepare_corpus
    from charlm.tasks.tag import TagTask, create_model, load_data
    from charlm.training.checkpoint import load_lm
    from charlm.training.runs import split_paths
    from charlm.training.trainer import TrainConfig, Trainer
    from charlm.use.tagger import Tagger

    tcfg = TrainConfig(level="word", batch=args.batch, lr=args.lr, min_count=args.min_count,
                       eval_every=args.eval_every, eval_batch=64, seed=args.seed,
                       time_budget=args.budget)
    data = load_data(args.train, args.dev, tcfg)
    lengths = np.array([len(x) for x in data.x])
    T_max = max(int(lengths[b].max()) for b in epoch_batches(lengths, args.batch, args.seed, 0))
    out = {"name": args.name, "train": Path(args.train).name, "dev": Path(args.dev).name,
           "cell": args.cell, "hidden": args.hidden, "embed": args.embed,
           "layers": args.layers, "batch": args.batch, "vocab": len(data.vocab),
           "labels": len(data.labels)}
    tmp = Path(tempfile.mkdtemp(prefix="tagbench"))
    if args.lm:
        # the same m sentences, laid out as the language model's windows of T_max steps
        text = "\n".join(" ".join(s) for s in data.train.tokens)
        lcfg = TrainConfig(level="word", batch=args.batch, bptt=T_max, steps=args.lm_steps,
                           eval_every=0, valid_fraction=0.0, lr=args.lr,
                           min_count=args.min_count, vocab_size=len(data.vocab))
        corpus = prepare_corpus([text], lcfg)
        mcfg = ModelConfig(cell=args.cell, layers=args.layers, hidden=args.hidden,
                           embed=args.embed, dropout=args.dropout)
        model = Model.create(mcfg, corpus.vocab, np.random.default_rng(1))
        t0 = time.perf_counter()
        Trainer(model, LMTask(corpus, lcfg, model), lcfg, tmp / "lm.npz").run_loop()
        out.update(mode="lm", bptt=T_max, steps=args.lm_steps, lm_vocab=len(corpus.vocab),
                   seconds=time.perf_counter() - t0, peak_rss_mb=peak_rss_mb())
        print(json.dumps(out), flush=True)
        return

    mcfg = ModelConfig(cell=args.cell, layers=args.layers, hidden=args.hidden,
                       embed=args.embed, dropout=args.dropout, task="tag",
                       bidirectional=args.bidirectional, char_embed=args.char_embed,
                       char_hidden=args.char_hidden)
    lms = [load_lm(p) for p in split_paths(args.lm_features)]
    model = create_model(mcfg, data, np.random.default_rng(args.seed), lms)
    steps = {"tokens": 0, "seconds": 0.0}

    def callback(e):
        if e["kind"] == "step":
            steps["tokens"] += e["tokens"]
            steps["seconds"] += e["seconds"]
    t0 = time.perf_counter()
    task = TagTask(data, tcfg, model)   # LM features: computed here, once per sentence
    features_s = time.perf_counter() - t0
    trainer = Trainer(model, task, tcfg, tmp / "tag.npz", callback)
    t0 = time.perf_counter()
    trainer.run_loop()
    wall = time.perf_counter() - t0
    from charlm.training.checkpoint import load
    best, _, _ = load(tmp / "tag.npz")
    tagger = Tagger(best)
    t1 = time.perf_counter()
    tagger.tag_token_lists(data.valid.tokens, batch=64)
    tag_seconds = time.perf_counter() - t1
    s = tagger.evaluate(data.valid)
    person = next((t for t in ("PER", "person") if t in s.get("per_type", {})), None)
    out.update(mode="tag", bidirectional=args.bidirectional, budget_s=args.budget,
               wall_s=wall, steps=trainer.run.step, epochs=trainer.run.epoch
               + trainer.run.window / len(trainer.batches), best_step=trainer.run.best_step,
               f1=s["entities"]["f1"], precision=s["entities"]["precision"],
               recall=s["entities"]["recall"],
               f1_person=s["per_type"][person]["f1"] if person else None,
               accuracy=s["accuracy"], train_tokens_per_s=steps["tokens"] / steps["seconds"],
               tag_tokens_per_s=s["tokens"] / tag_seconds, longest_batch_T=T_max,
               char_embed=args.char_embed, char_hidden=args.char_hidden,
               lm_features=mcfg.lm_features, lm_features_s=features_s,
               f1_per_type={t: v["f1"] for t, v in s.get("per_type", {}).items()},
               peak_rss_mb=peak_rss_mb())
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
