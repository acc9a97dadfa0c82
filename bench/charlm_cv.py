#!/usr/bin/env python3
"""charlm's K-fold cross-validation of a classifier, with the options and output of
bench/torch_classifier.py, for side-by-side runs.

It calls charlm.training.folds.cross_validate (the one trainer per fold, as `charlm train --task
classify --folds K` does) without the final model on all the data, which a benchmark does not
need. Budget: --budget seconds of training per fold (charlm's --time: validation passes made
every --eval-every steps count in it). Prints one JSON line per fold and a summary line: mean and
sample standard deviation of the held-out accuracy, training sentences/s (examples / seconds in
training steps) and classification sentences/s (held-out examples / seconds), medians over folds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(v, "2")

import numpy as np  # noqa: E402

from charlm.nn.model import ModelConfig  # noqa: E402
from charlm.text.labelled import read_examples  # noqa: E402
from charlm.training.folds import cross_validate  # noqa: E402
from charlm.training.trainer import TrainConfig  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from protocol import classify_args  # beside this script: the options both sides share
    classify_args(p)
    p.add_argument("--cell", default="lstm")
    p.add_argument("--pool", default="last")
    a = p.parse_args(argv)
    ex = read_examples(a.files, a.classes)
    mcfg = ModelConfig(cell=a.cell, layers=a.layers, hidden=a.hidden, embed=a.embed,
                       dropout=a.dropout, task="classify", bidirectional=a.bidirectional,
                       pool=a.pool)
    tcfg = TrainConfig(level=a.level, lowercase=a.lowercase, min_count=a.min_count,
                       vocab_size=a.vocab_size, lr=a.lr, batch=a.batch, seed=a.seed,
                       valid_fraction=a.valid_fraction, eval_every=a.eval_every,
                       eval_batch=64, time_budget=a.budget)

    def show(e):
        if e["kind"] == "fold":
            print(json.dumps({"impl": "charlm", **e}), flush=True)

    with tempfile.TemporaryDirectory() as tmp, np.errstate(all="ignore"):
        s = cross_validate(ex, a.folds, mcfg, tcfg, os.path.join(tmp, "cv.npz"), show,
                           final=False, max_folds=a.max_folds)
    folds_run = len(s.pop("per_fold"))
    s.pop("classes")
    print(json.dumps({"impl": "charlm", "summary": True, "level": a.level,
                      "bidirectional": a.bidirectional, "hidden": a.hidden, "embed": a.embed,
                      "layers": a.layers, "folds_run": folds_run, "budget_s": a.budget, **s}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
