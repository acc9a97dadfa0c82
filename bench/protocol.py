"""The options both sides of a charlm-against-PyTorch benchmark take, with one set of defaults,
so that the two scripts of a pair cannot drift apart: the tagging pair (tag_run.py,
torch_tagger.py) and the classification pair (charlm_cv.py, torch_classifier.py). Each script
adds its own options after these (charlm's cell and pooling, PyTorch's threads)."""

from __future__ import annotations

import argparse


def tagging_args(ap: argparse.ArgumentParser) -> None:
    """CoNLL train -> dev, a BiLSTM tagger trained for --budget seconds, dev F1 every
    --eval-every steps."""
    ap.add_argument("--train", required=True)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--name", default="", help="A label for the JSON line.")
    ap.add_argument("--bidirectional", action="store_true")
    ap.add_argument("--budget", type=float, default=80.0, help="Training seconds.")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--embed", type=int, default=64)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-count", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--char-embed", type=int, default=0, help="Character words (0 = off).")
    ap.add_argument("--char-hidden", type=int, default=0)


def classify_args(p: argparse.ArgumentParser) -> None:
    """Labelled files, K-fold cross-validation, --budget training seconds per fold."""
    p.add_argument("files", nargs="*", help="labelled files (LABEL<TAB>TEXT, TEXT<TAB>LABEL, "
                                            "__label__X text)")
    p.add_argument("--class", dest="classes", action="append", default=[],
                   help="LABEL=FILE, one file per class")
    p.add_argument("--level", default="word", choices=("word", "char"))
    p.add_argument("--lowercase", action="store_true")
    p.add_argument("--min-count", type=int, default=1)
    p.add_argument("--vocab-size", type=int, default=10000)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--max-folds", type=int, default=0, help="run only the first N folds")
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--budget", type=float, default=30.0, help="training seconds per fold")
    p.add_argument("--seed", type=int, default=1234)
