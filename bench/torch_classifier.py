#!/usr/bin/env python3
"""The charlm classifier written in PyTorch, for side-by-side K-fold runs.

Model: nn.Embedding(V, E) -> nn.LSTM(E, H, L, bidirectional?) over pack_padded_sequence ->
pooled [a→<T_x>, a←<1>] (the final states h_n of the packed run: the forward direction's at each
sentence's own last token, the backward one's at its first) -> nn.Dropout -> nn.Linear(D, K),
cross-entropy averaged over the batch; Adam, clip_grad_norm_(5), float32, one thread per CPU it
may run on.

Everything that is not the network comes from charlm itself, so both sides see the same thing:
reading the examples, the vocabulary (charlm.tasks.classify.build_vocab over each fold's training
part), the stratified seeded folds, the inner stratified validation split used to keep the best
parameters, and the length-bucketed batches of each epoch (same seeds).

Budget: --budget seconds of training per fold, counting the validation passes made every
--eval-every steps (as charlm's trainer counts them); then the held-out fold is classified with the
parameters that were best on the inner validation split. Prints one JSON line per fold and a summary
line: mean and sample standard deviation of the held-out accuracy, training sentences/s (examples
trained on / seconds spent in training steps, validation passes not counted) and classification
sentences/s (held-out examples / seconds), each a median over the folds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(v, "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

from charlm.tasks.classify import (  # noqa: E402
    build_vocab,
    encode_texts,
    label_ids,
    stratified_folds,
    stratified_split,
)
from charlm.tasks.sentences import epoch_batches, pad  # noqa: E402
from charlm.text.labelled import label_set, read_examples  # noqa: E402


class Net(nn.Module):
    def __init__(self, V, E, H, L, bidirectional, K, dropout):
        super().__init__()
        self.emb = nn.Embedding(V, E)
        self.rnn = nn.LSTM(E, H, L, bidirectional=bidirectional,
                           dropout=dropout if L > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(H * (2 if bidirectional else 1), K)
        self.bidirectional = bidirectional

    def forward(self, X, lengths):
        packed = pack_padded_sequence(self.emb(X), lengths, enforce_sorted=False)
        _, (h_n, _) = self.rnn(packed)
        p = torch.cat([h_n[-2], h_n[-1]], dim=1) if self.bidirectional else h_n[-1]
        return self.out(self.drop(p))


def predict(net, seqs, m=64):
    net.eval()
    order = np.argsort([len(s) for s in seqs], kind="stable")
    pred = np.empty(len(seqs), dtype=np.int64)
    with torch.no_grad():
        for s in range(0, len(order), m):
            idx = order[s: s + m]
            X, lengths = pad([seqs[i] for i in idx])
            pred[idx] = net(torch.from_numpy(X), torch.from_numpy(lengths)).argmax(1).numpy()
    net.train()
    return pred


def run_fold(a, texts, y, train_idx, test_idx, fold):
    inner_tr, inner_va = stratified_split(y[train_idx], a.valid_fraction, a.seed)
    tr, va = train_idx[inner_tr], train_idx[inner_va]
    vocab = build_vocab([texts[i] for i in tr], a.level, a.min_count, a.lowercase,
                        a.vocab_size)
    seqs = [s.astype(np.int64) for s in encode_texts(vocab, texts)]
    torch.manual_seed(a.seed + fold)
    K = int(y.max()) + 1
    net = Net(len(vocab), a.embed, a.hidden, a.layers, a.bidirectional, K, a.dropout)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    lossf = nn.CrossEntropyLoss()
    tr_seqs = [seqs[i] for i in tr]
    tr_len = np.array([len(s) for s in tr_seqs])
    best, best_state, step, seen, epoch, step_s = -1.0, None, 0, 0, 0, 0.0
    t0 = time.perf_counter()
    done = False
    while not done:
        for index in epoch_batches(tr_len, a.batch, a.seed, epoch):
            ts = time.perf_counter()
            X, lengths = pad([tr_seqs[i] for i in index])
            logits = net(torch.from_numpy(X), torch.from_numpy(lengths))
            loss = lossf(logits, torch.from_numpy(y[tr][index]))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            step_s += time.perf_counter() - ts
            step += 1
            seen += len(index)
            over = time.perf_counter() - t0 >= a.budget
            if step % a.eval_every == 0 or over:
                acc = float((predict(net, [seqs[i] for i in va]) == y[va]).mean())
                if acc > best:
                    best = acc
                    best_state = {k: v.clone() for k, v in net.state_dict().items()}
            if over:
                done = True
                break
        epoch += 1
    train_s = time.perf_counter() - t0
    net.load_state_dict(best_state)
    t1 = time.perf_counter()
    pred = predict(net, [seqs[i] for i in test_idx])
    classify_s = time.perf_counter() - t1
    return {"fold": fold, "accuracy": float((pred == y[test_idx]).mean()),
            "best_valid_accuracy": best, "steps": step,
            "epochs": step / max(1, -(-len(tr) // a.batch)),
            "train_examples": int(seen), "train_seconds": train_s,
            "train_sent_per_s": seen / step_s,
            "classify_sent_per_s": len(test_idx) / classify_s, "vocab": len(vocab)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from protocol import classify_args  # beside this script: the options both sides share
    classify_args(p)
    a = p.parse_args(argv)
    # as many threads as the CPUs this process may run on (2 here; 1 when pinned to a core)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    ex = read_examples(a.files, a.classes)
    classes = label_set(ex.labels)
    y = label_ids(ex.labels, classes)
    folds = stratified_folds(y, a.folds, a.seed)
    rows = []
    for k, test_idx in enumerate(folds[: a.max_folds or None]):
        train_idx = np.concatenate([f for j, f in enumerate(folds) if j != k])
        r = run_fold(a, ex.texts, y, np.sort(train_idx), test_idx, k + 1)
        rows.append(r)
        print(json.dumps({"impl": "torch", **r}), flush=True)
    accs = [r["accuracy"] for r in rows]
    print(json.dumps({
        "impl": "torch", "summary": True, "level": a.level, "bidirectional": a.bidirectional,
        "hidden": a.hidden, "embed": a.embed, "layers": a.layers, "folds": a.folds,
        "folds_run": len(rows), "budget_s": a.budget, "torch": torch.__version__,
        "mean_accuracy": statistics.mean(accs),
        "sd_accuracy": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "train_sent_per_s": statistics.median(r["train_sent_per_s"] for r in rows),
        "classify_sent_per_s": statistics.median(r["classify_sent_per_s"] for r in rows)}),
        flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
