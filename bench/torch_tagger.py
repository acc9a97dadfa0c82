"""The reference tagger in PyTorch, for side-by-side runs with bench/tag_run.py.

Same model as ``charlm train --task tag``: ``nn.Embedding`` -> ``nn.LSTM`` (optionally
bidirectional, over ``pack_padded_sequence``) -> inverted dropout -> ``nn.Linear`` over the
labels at every step. Same data and batches: charlm's CoNLL reader, vocabulary and
``epoch_batches`` (sentences bucketed by length, reshuffled each epoch from the seed), so only
the model's implementation differs. Same objective and optimizer: cross-entropy summed over a
batch's real tokens and divided by its number of sentences, Adam, global-norm clipping at 5,
float32. Same protocol: train for --budget seconds, evaluate on DEV every --eval-every steps,
keep the best entity F1. Prints one JSON line: dev entity F1 (overall, persons and per type),
token accuracy, training and tagging tokens per second, peak RSS.

``--char-embed n_ce --char-hidden n_c`` adds charlm's character words (``--char-embed`` and
``--char-hidden`` of ``charlm train --task tag``, see charlm/wordfeat.py): the unique words of
a batch, as charlm's own character ids (its character vocabulary of the training words and its
20-character limit, from ``WordFeatures``), go through ``nn.Embedding`` -> a bidirectional
``nn.LSTM`` over packed sequences, whose final states (forward after the last character,
backward after the first) are concatenated and joined to each position's word embedding. The
construction is the one tests/test_charwords.py checks charlm's character network against.

    python bench/torch_tagger.py --train TRAIN.conll --dev DEV.conll --bidirectional --budget 80
    python bench/torch_tagger.py ... --char-embed 25 --char-hidden 25
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class CharWords(nn.Module):
    """r(w) = [forward state after w's last character, backward state after its first].
    ``rnn``: the recurrent layer's class (the tagger uses ``nn.LSTM``; tests/test_charwords.py
    also checks charlm's basic-RNN character words against ``nn.RNN`` here)."""

    def __init__(self, n_chars, char_embed, char_hidden, rnn=nn.LSTM):
        super().__init__()
        self.emb = nn.Embedding(n_chars, char_embed)      # N(0, 1), as charlm's C.E
        self.rnn = rnn(char_embed, char_hidden, bidirectional=True)

    def forward(self, chars, lengths):
        """chars (T_c, n_u) long, lengths (n_u,) -> (n_u, 2 n_c)."""
        packed = pack_padded_sequence(self.emb(chars), lengths, enforce_sorted=False)
        h_n = self.rnn(packed)[1]                         # LSTM: (h_n, c_n)
        h_n = h_n[0] if isinstance(h_n, tuple) else h_n   # (2, n_u, n_c): forward, backward
        return torch.cat([h_n[0], h_n[1]], dim=1)


class Tagger(nn.Module):
    def __init__(self, V, K, embed, hidden, layers, bidirectional, dropout,
                 n_chars=0, char_embed=0, char_hidden=0):
        super().__init__()
        self.emb = nn.Embedding(V, embed)
        nn.init.normal_(self.emb.weight)          # N(0, 1), as charlm
        self.chars = CharWords(n_chars, char_embed, char_hidden) if char_hidden else None
        self.rnn = nn.LSTM(embed + 2 * char_hidden, hidden, num_layers=layers,
                           bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden * (2 if bidirectional else 1), K)

    def forward(self, X, lengths, words=None):
        """X (T, m) long, lengths (m,), ``words`` (character ids (T_c, n_u), their lengths
        (n_u,), the unique word at each position (T, m)) with character words -> logits
        (T, m, K)."""
        x = self.emb(X)
        if self.chars is not None:
            chars, char_lengths, inverse = words
            x = torch.cat([x, self.chars(chars, char_lengths)[inverse]], dim=2)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        h, _ = self.rnn(packed)
        h, _ = pad_packed_sequence(h, total_length=X.shape[0])
        return self.out(self.drop(h))


def pad(seqs):
    lengths = torch.tensor([len(s) for s in seqs])
    X = torch.zeros(int(lengths.max()), len(seqs), dtype=torch.long)
    for i, s in enumerate(seqs):
        X[:len(s), i] = torch.from_numpy(np.asarray(s, dtype=np.int64))
    return X, lengths


def word_batch(features, sentences):
    """charlm's character ids of a batch's unique words (None without character words)."""
    if features is None:
        return None
    w = features.batch(sentences)
    return (torch.from_numpy(w.chars), torch.from_numpy(w.char_lengths),
            torch.from_numpy(w.inverse))


def predict(net, xs, batch=64, features=None, tokens=None):
    net.eval()
    order = np.argsort([len(x) for x in xs], kind="stable")
    pred = [None] * len(xs)
    with torch.no_grad():
        for s in range(0, len(xs), batch):
            idx = order[s:s + batch]
            X, lengths = pad([xs[i] for i in idx])
            words = word_batch(features, [tokens[i] for i in idx]) if features else None
            best = net(X, lengths, words).argmax(dim=2).numpy()
            for j, i in enumerate(idx):
                pred[i] = best[:int(lengths[j]), j]
    net.train()
    return pred


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    from protocol import tagging_args  # beside this script: the options both sides share
    tagging_args(ap)
    ap.add_argument("--threads", type=int, default=0,
                    help="Torch threads (0: the CPUs this process may run on).")
    args = ap.parse_args()
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    torch.manual_seed(args.seed)

    from charlm.nn.charwords import WordFeatures
    from charlm.tasks.metrics import tagging_scores
    from charlm.tasks.sentences import epoch_batches
    from charlm.tasks.tag import load_data
    from charlm.training.trainer import TrainConfig

    if bool(args.char_embed) != bool(args.char_hidden):
        ap.error("character words need both --char-embed and --char-hidden")
    cfg = TrainConfig(level="word", batch=args.batch, min_count=args.min_count, seed=args.seed)
    data = load_data(args.train, args.dev, cfg)
    labels = data.labels
    # charlm's character vocabulary of the training words, and its encoding of a batch's words
    features = (WordFeatures.build(data.train.tokens, args.char_hidden)
                if args.char_hidden else None)
    net = Tagger(len(data.vocab), len(labels), args.embed, args.hidden, args.layers,
                 args.bidirectional, args.dropout,
                 len(features.chars) if features else 0, args.char_embed, args.char_hidden)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    lengths = np.array([len(x) for x in data.x])
    gold = [[labels[i] for i in y] for y in data.valid_y]

    def dev_scores():
        pred = predict(net, data.valid_x, features=features, tokens=data.valid.tokens)
        return tagging_scores(gold, [[labels[i] for i in p] for p in pred], True)

    best_f1, best_state, best_step = -1.0, None, 0
    step = epoch = 0
    tokens, train_s = 0, 0.0
    start = time.perf_counter()
    done = False
    while not done:
        for idx in epoch_batches(lengths, args.batch, args.seed, epoch):
            t0 = time.perf_counter()
            X, L = pad([data.x[i] for i in idx])
            Y, _ = pad([data.y[i] for i in idx])
            words = word_batch(features, [data.train.tokens[i] for i in idx])
            logits = net(X, L, words)
            mask = torch.arange(X.shape[0])[:, None] < L[None, :]
            loss = nn.functional.cross_entropy(logits[mask], Y[mask], reduction="sum") / len(idx)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            train_s += time.perf_counter() - t0
            tokens += int(L.sum())
            step += 1
            out_of_time = time.perf_counter() - start >= args.budget
            if step % args.eval_every == 0 or out_of_time:
                f1 = dev_scores()["entities"]["f1"]
                if f1 > best_f1:
                    best_f1, best_step = f1, step
                    best_state = {k: v.clone() for k, v in net.state_dict().items()}
            if out_of_time:
                done = True
                break
        epoch += 1
    wall = time.perf_counter() - start
    net.load_state_dict(best_state)
    t1 = time.perf_counter()
    predict(net, data.valid_x, features=features, tokens=data.valid.tokens)
    tag_s = time.perf_counter() - t1
    s = dev_scores()
    person = next((t for t in ("PER", "person") if t in s["per_type"]), None)
    n_dev = sum(len(x) for x in data.valid_x)
    print(json.dumps({
        "name": args.name, "impl": "torch", "torch": torch.__version__,
        "threads": torch.get_num_threads(), "train": os.path.basename(args.train),
        "dev": os.path.basename(args.dev), "hidden": args.hidden, "embed": args.embed,
        "layers": args.layers, "batch": args.batch, "vocab": len(data.vocab),
        "bidirectional": args.bidirectional, "char_embed": args.char_embed,
        "char_hidden": args.char_hidden, "budget_s": args.budget, "wall_s": wall,
        "steps": step, "best_step": best_step, "f1": s["entities"]["f1"],
        "precision": s["entities"]["precision"], "recall": s["entities"]["recall"],
        "f1_person": s["per_type"][person]["f1"] if person else None,
        "f1_per_type": {t: v["f1"] for t, v in s["per_type"].items()},
        "accuracy": s["accuracy"], "train_tokens_per_s": tokens / train_s,
        "tag_tokens_per_s": n_dev / tag_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}),
        flush=True)


if __name__ == "__main__":
    main()
