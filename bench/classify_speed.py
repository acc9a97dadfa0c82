#!/usr/bin/env python3
"""Interleaved throughput of the same classifier in charlm and in PyTorch (sentences/s).

One fold's training part of the data (charlm's folds, vocabulary and length-bucketed batches on
both sides), the same model (bench/torch_classifier.py's Net against charlm's), then --rounds
rounds, each training charlm for --seconds, then PyTorch for --seconds, then classifying the
held-out fold with each. Training sentences/s counts the examples of the steps over the seconds
spent in them (no validation). Prints one JSON line per round and a summary with the medians and
the ratios charlm / PyTorch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(v, "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch_classifier import Net, predict  # noqa: E402

from charlm.nn.model import ModelConfig  # noqa: E402
from charlm.tasks.classify import (  # noqa: E402
    encode_texts,
    label_ids,
    predict_proba,
    prepare,  # noqa: E402
    stratified_folds,
)
from charlm.tasks.sentences import epoch_batches, pad  # noqa: E402
from charlm.text.labelled import label_set, read_examples  # noqa: E402
from charlm.training.trainer import TrainConfig, Trainer  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*")
    p.add_argument("--class", dest="classes", action="append", default=[])
    p.add_argument("--level", default="word", choices=("word", "char"))
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1234)
    a = p.parse_args(argv)
    # as many threads as the CPUs this process may run on (2 here; 1 when pinned to a core)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    ex = read_examples(a.files, a.classes)
    classes = label_set(ex.labels)
    y = label_ids(ex.labels, classes)
    test = stratified_folds(y, 10, a.seed)[0]
    train = ex.subset(np.setdiff1d(np.arange(len(y)), test))
    mcfg = ModelConfig(cell="lstm", layers=1, hidden=a.hidden, embed=a.embed, dropout=0.5,
                       task="classify", bidirectional=a.bidirectional)
    tcfg = TrainConfig(level=a.level, lr=a.lr, batch=a.batch, seed=a.seed, eval_every=0,
                       valid_fraction=0.0, time_budget=a.seconds)
    model, task = prepare(train, None, mcfg, tcfg)
    test_seqs = encode_texts(model.vocab, [ex.texts[i] for i in test])
    net = Net(len(model.vocab), a.embed, a.hidden, 1, a.bidirectional, len(classes), 0.5)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    lossf = torch.nn.CrossEntropyLoss()
    seqs = [s.astype(np.int64) for s in task.seqs]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, np.errstate(all="ignore"):
        for r in range(a.rounds):
            spent = {"s": 0.0, "n": 0}

            def count(e, spent=spent):
                if e["kind"] == "step":
                    spent["s"] += e["seconds"]
                    spent["n"] += e["tokens"]

            Trainer(model, task, tcfg, os.path.join(tmp, "m.npz"), count).run_loop()
            c_train = spent["n"] / spent["s"]
            n, s, epoch, t0 = 0, 0.0, r, time.perf_counter()
            while time.perf_counter() - t0 < a.seconds:
                for index in epoch_batches(task.lengths, a.batch, a.seed, epoch):
                    ts = time.perf_counter()
                    X, lengths = pad([seqs[i] for i in index])
                    loss = lossf(net(torch.from_numpy(X), torch.from_numpy(lengths)),
                                 torch.from_numpy(task.y[index]))
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                    opt.step()
                    s += time.perf_counter() - ts
                    n += len(index)
                    if time.perf_counter() - t0 >= a.seconds:
                        break
                epoch += 1
            t_train = n / s
            t1 = time.perf_counter()
            predict_proba(model, test_seqs, 64)
            c_cls = len(test_seqs) / (time.perf_counter() - t1)
            t2 = time.perf_counter()
            predict(net, [x.astype(np.int64) for x in test_seqs])
            t_cls = len(test_seqs) / (time.perf_counter() - t2)
            row = {"round": r + 1, "charlm_train_sent_per_s": c_train,
                   "torch_train_sent_per_s": t_train, "charlm_classify_sent_per_s": c_cls,
                   "torch_classify_sent_per_s": t_cls}
            rows.append(row)
            print(json.dumps({"speed": True, **row}), flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "round"}
    print(json.dumps({"speed": True, "summary": True, "level": a.level,
                      "bidirectional": a.bidirectional, "embed": a.embed, "hidden": a.hidden,
                      "rounds": a.rounds, "seconds": a.seconds, **med,
                      "train_ratio": med["charlm_train_sent_per_s"]
                      / med["torch_train_sent_per_s"],
                      "classify_ratio": med["charlm_classify_sent_per_s"]
                      / med["torch_classify_sent_per_s"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
