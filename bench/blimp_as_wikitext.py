"""Write a subset of BLiMP in WikiText-2's spelling, for models trained on WikiText-2.

    python3 bench/blimp_as_wikitext.py SRC_DIR DST_DIR [--agreement N] [--other N]

WikiText-2 is tokenized the Penn Treebank way: punctuation stands apart ("full ."), and
contractions are split before the apostrophe ("isn 't", "can 't", "cat 's").
BLiMP is written normally ("isn't",
"cat's", "full."), so at word level every contraction would be an unknown word, and at char level
the text would look unlike anything the model read. Both sentences of every pair are rewritten
the same way; nothing else changes. Keeps the first N pairs of each subject-verb agreement
paradigm (--agreement) and of every other paradigm (--other); 0 drops them.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

CONTRACTION = re.compile(r"(\w)('(?:t|s|re|ve|ll|d|m))\b")
TOKEN = re.compile(r"'(?:t|s|re|ve|ll|d|m)\b|\w+|[^\w\s]")


def wikitext_spelling(sentence: str) -> str:
    """'The cat's toy isn't here.' -> "The cat 's toy isn 't here ." """
    return " ".join(TOKEN.findall(CONTRACTION.sub(r"\1 \2", sentence)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--agreement", type=int, default=1000)
    ap.add_argument("--other", type=int, default=50)
    args = ap.parse_args()
    dst = Path(args.dst)
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(Path(args.src).glob("*.jsonl")):
        lines = [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
        agreement = lines and lines[0].get("linguistics_term") == "subject_verb_agreement"
        keep = lines[: args.agreement if agreement else args.other]
        if not keep:
            continue
        with open(dst / f.name, "w", encoding="utf-8") as out:
            for d in keep:
                d["sentence_good"] = wikitext_spelling(d["sentence_good"])
                d["sentence_bad"] = wikitext_spelling(d["sentence_bad"])
                out.write(json.dumps(d) + "\n")


if __name__ == "__main__":
    main()
