"""The starter model's recipe: a character LSTM of general English prose, trained by charlm on
ten public-domain Project Gutenberg books, and the step that makes the shipped file from it.

    python bench/starter_model.py --books DIR [--time 70m] [--work starter-work]
    python bench/starter_model.py --store starter-work/starter.npz

DIR holds the ten books, one plain-text UTF-8 file each (Project Gutenberg eBooks 11, 55, 74,
84, 120, 174, 1342, 1661, 2701 and 64317, the text of each book without Project Gutenberg's
header and footer; ``corpora/README.md`` lists them). The books are prepared first (nothing
else is changed):

- typographic quotes and apostrophes become ASCII (' and "), so that text a user types
  with a keyboard reads as the books do;
- each book's last 5 % of lines (moved on to the next blank line, so that no paragraph is
  split) is held out; the held-out parts together are the validation text.

Then ``charlm train`` runs on the prepared text with the options in RECIPE, one BLAS thread,
for --time (the shipped model: 70 minutes). The model file holds the parameters best on
validation.

``--store MODEL`` writes the shipped file, ``charlm/models/starter.npz``: MODEL's best
parameters as float16, its run's record without the training state, and SOURCE (what the
model is, its text and the text's licence, this recipe) as the file's ``source`` entry, which
``charlm info --model starter`` shows (see :func:`charlm.use.starter.store`). It also writes
``tests/data/starter_reference.json``: the float32 model's scores of REFERENCE_SENTENCES, which
the tests compare with the shipped float16 file's (the float32 file itself is not shipped).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from charlm.training import checkpoint
from charlm.use import starter
from charlm.use.score import score_many

QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
RECIPE = ["--level", "char", "--prose", "--cell", "lstm", "--layers", "2", "--hidden", "384",
          "--embed", "64", "--dropout", "0.1", "--batch", "32", "--bptt", "128", "--lr", "2e-3",
          "--min-count", "20", "--eval-every", "500", "--seed", "1234"]
BOOKS = ("Jane Austen, Pride and Prejudice (eBook #1342); Lewis Carroll, Alice's Adventures in "
         "Wonderland (#11); Mary W. Shelley, Frankenstein (#84); A. Conan Doyle, The "
         "Adventures of Sherlock Holmes (#1661); Herman Melville, Moby-Dick (#2701); Mark "
         "Twain, The Adventures of Tom Sawyer (#74); Oscar Wilde, The Picture of Dorian Gray "
         "(#174); L. Frank Baum, The Wonderful Wizard of Oz (#55); Robert Louis Stevenson, "
         "Treasure Island (#120); F. Scott Fitzgerald, The Great Gatsby (#64317)")
SOURCE = {
    "model": "charlm's starter model, a character-level LSTM of general English prose",
    "text": f"ten books from Project Gutenberg (www.gutenberg.org): {BOOKS}; typographic "
            "quotes made ASCII, the last 5% of each book held out for validation",
    "licence": "the books are in the public domain in the United States",
    "recipe": "bench/starter_model.py in the charlm repository (charlm train --level char "
              "--prose --cell lstm --layers 2 --hidden 384 --embed 64 --dropout 0.1 --batch 32 "
              "--bptt 128 --lr 2e-3 --min-count 20 --time 70m, one BLAS thread); parameters "
              "stored as float16",
}
ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "charlm" / "models" / "starter.npz"
REFERENCE = ROOT / "tests" / "data" / "starter_reference.json"
# The course's pair, a few lines of the books' kind and of other kinds, and the first 40
# correct sentences of the bundled BLiMP pairs.
REFERENCE_SENTENCES = [
    "the apple and pair salad", "the apple and pear salad",
    "It was the best of times, it was the worst of times.",
    "Call me Ishmael.", '"I am afraid," said she, "that it is too late."',
    "The quick brown fox jumps over the lazy dog.", "ROMEO: But, soft! what light?",
    "Version 2.13 was released on 7 December 2026; see https://example.org/news.",
    "emma", "",
]


def reference_sentences() -> list[str]:
    with open(ROOT / "corpora" / "blimp_agreement.jsonl", encoding="utf-8") as f:
        blimp = [json.loads(line)["sentence_good"] for line in f][:40]
    return REFERENCE_SENTENCES + blimp


def write_reference(model: Path, out: Path = REFERENCE) -> None:
    """The float32 model's log P of each reference sentence (natural log, with <EOS>)."""
    m, _, _ = checkpoint.load(model)
    sentences = reference_sentences()
    rows = [{"text": r.text, "log_prob": r.log_prob, "n_tokens": r.n_tokens}
            for r in score_many(m, sentences)]
    doc = {"what": "log P (nats) of each sentence under the float32 starter model, before it "
                   "was stored as float16; written by bench/starter_model.py --store",
           "float32_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
           "config": m.config.to_json(), "sentences": rows}
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def prepare(books: Path, out: Path, held_out: float = 0.05) -> tuple[Path, Path]:
    """Write train.txt and valid.txt under ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    train, valid = [], []
    for book in sorted(books.glob("*.txt")):
        lines = book.read_text(encoding="utf-8").translate(QUOTES).splitlines()
        cut = int(len(lines) * (1 - held_out))
        # Cut at a blank line so that no paragraph is split between train and valid.
        while cut < len(lines) and lines[cut].strip():
            cut += 1
        train.append("\n".join(lines[:cut]))
        valid.append("\n".join(lines[cut:]))
    if not train:
        raise SystemExit(f"No *.txt books in {books}.")
    (out / "train.txt").write_text("\n\n".join(train) + "\n", encoding="utf-8")
    (out / "valid.txt").write_text("\n\n".join(valid) + "\n", encoding="utf-8")
    return out / "train.txt", out / "valid.txt"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="Other options are passed on to charlm train.")
    ap.add_argument("--books", type=Path, help="The folder of the ten books (*.txt).")
    ap.add_argument("--work", type=Path, default=Path("starter-work"),
                    help="Where the prepared text and the model go [starter-work].")
    ap.add_argument("--time", default="70m", help="charlm train --time [70m].")
    ap.add_argument("--out", type=Path, help="The model file [WORK/starter.npz].")
    ap.add_argument("--charlm", default=None, help="The charlm command [this Python's].")
    ap.add_argument("--store", type=Path, metavar="MODEL",
                    help="Instead of training: write MODEL as the shipped starter file.")
    ap.add_argument("--to", type=Path, default=SHIPPED,
                    help="With --store: where [charlm/models/starter.npz].")
    args, extra = ap.parse_known_args(argv)
    if args.store is not None:
        starter.store(args.store, args.to, SOURCE)
        write_reference(args.store)
        print(f"Wrote {args.to} ({args.to.stat().st_size:,} bytes) and {REFERENCE}.",
              file=sys.stderr)
        return 0
    if args.books is None:
        ap.error("give --books DIR (or --store MODEL)")
    train, valid = prepare(args.books, args.work)
    out = args.out or args.work / "starter.npz"
    charlm = args.charlm.split() if args.charlm else [sys.executable, "-m", "charlm"]
    cmd = [*charlm, "train", str(train), "--valid", str(valid), *RECIPE,
           "--time", args.time, "--out", str(out), "--force", *extra]
    print(" ".join(cmd), file=sys.stderr)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
