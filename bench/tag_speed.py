"""Tagging speed alone: the dev set tagged --passes times in one process, tokens/s per pass.

    python bench/tag_speed.py --train TRAIN.conll --dev DEV.conll [--torch] --passes 7 --name A

bench/tag_run.py and bench/torch_tagger.py time one tagging pass of a fraction of a second after
training, which the first pass's warm-up and any other work on the machine sway by tens of per
cent. Here the model is untrained (the work does not depend on the weights): a bidirectional
LSTM of bench/tag_run.py's default size (embed 64, hidden 128, one layer), batches of 64
sentences. charlm is timed two ways, alternately: ``Tagger.tag_token_lists`` (tokens in,
``Tagged`` results with probabilities and entities out, what ``charlm tag`` does) and
``tasks.tag.predict`` (ids in, label ids out, what bench/torch_tagger.py's ``predict`` does);
``--torch`` times that ``predict`` of the PyTorch model. Prints one JSON line with the median
and the best pass of each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True, help="The training file (vocabulary, labels).")
    ap.add_argument("--dev", required=True, help="The file tagged.")
    ap.add_argument("--torch", action="store_true", help="The PyTorch model instead.")
    ap.add_argument("--passes", type=int, default=7)
    ap.add_argument("--name", default="")
    args = ap.parse_args()

    from charlm.nn.model import ModelConfig
    from charlm.tasks.tag import create_model, load_data, predict
    from charlm.training.trainer import TrainConfig
    data = load_data(args.train, args.dev, TrainConfig(level="word", min_count=2, seed=1234))
    n = sum(len(x) for x in data.valid_x)
    rates: dict[str, list[float]] = {}

    def timed(key, f):
        t0 = time.perf_counter()
        f()
        rates.setdefault(key, []).append(n / (time.perf_counter() - t0))

    if args.torch:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import torch
        from torch_tagger import Tagger as Net
        from torch_tagger import predict as torch_predict
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        torch.manual_seed(1)
        net = Net(len(data.vocab), len(data.labels), 64, 128, 1, True, 0.3)
        for _ in range(args.passes):
            timed("predict", lambda: torch_predict(net, data.valid_x))
    else:
        from charlm.use.tagger import Tagger
        cfg = ModelConfig(cell="lstm", layers=1, hidden=128, embed=64, dropout=0.3,
                          task="tag", bidirectional=True)
        model = create_model(cfg, data, np.random.default_rng(1))
        tagger = Tagger(model)
        for _ in range(args.passes):
            timed("tag_token_lists", lambda: tagger.tag_token_lists(data.valid.tokens, 64))
            timed("predict", lambda: predict(model, data.valid_x, batch=64))
    out = {"name": args.name, "impl": "torch" if args.torch else "charlm", "tokens": n,
           "passes": args.passes}
    for k, v in rates.items():
        out[f"{k}_tokens_per_s"] = statistics.median(v)
        out[f"{k}_best"] = max(v)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
