"""What starting from the starter model buys: validation loss after the same training time,
from scratch and with ``--init-from starter``, on corpora the starter model never saw.

    python bench/starter_finetune.py [--seconds 60,300] [--shared DIR] [--only NAME,...]

For each corpus and each time budget, two runs of ``charlm train`` start at the same moment,
each pinned to one core (where ``taskset`` exists) with one BLAS thread:

- scratch: the starter model's shape and run options (``--cell lstm --layers 2 --hidden 384
  --embed 64 --dropout 0.1 --batch 32 --bptt 128 --lr 2e-3``), a vocabulary of the corpus;
- starter: ``--init-from starter`` with the same run options (its shape, dropout and
  vocabulary are the starter model's; characters it never saw are read as <UNK>).

Every corpus is read one sequence per line (charlm's default) and cut the same way for both
runs: its last 10 % of lines is the validation file (``--valid``), the rest the training
file. The table gives the validation loss (nats per token, a token being a character or the
<EOS> that ends a line) the best evaluation reached, evaluations being at the end of the
budget only; "start" is the starter model's loss on the same file before any training (the
same computation, ``LanguageModel.evaluate``). Time-dependent: run it on an otherwise idle
machine, or at least with nothing else timed running.

Corpora: tiny Shakespeare, names and the UCI review sentences (their text column) are bundled;
with ``--shared DIR`` also DIR/dinos.txt and DIR/wikitext-2/valid.txt, the latter made
readable as plain text by undoing WikiText's tokenization (``@-@`` and the like, spaces before
punctuation; its ``<unk>`` is kept as it is).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from charlm.text.bundled import bundled
from charlm.training import checkpoint
from charlm.use.bench import describe_machine, machine_info
from charlm.use.language_model import LanguageModel
from charlm.use.starter import load as load_starter

RUN = ["--batch", "32", "--bptt", "128", "--lr", "2e-3", "--seed", "1",
       "--eval-every", "1000000"]
SHAPE = ["--cell", "lstm", "--layers", "2", "--hidden", "384", "--embed", "64",
         "--dropout", "0.1"]
HELD_OUT = 0.1


def wikitext_plain(text: str) -> str:
    """WikiText's tokenized text read back as plain text, roughly: ``@-@``, ``@,@``, ``@.@``
    joined, no space before , . ; : ! ? ) 's n't or after (, headings' ``= = x = =`` kept."""
    text = re.sub(r" @([-,.])@ ", r"\1", text)
    text = re.sub(r" ([,.;:!?)\]])", r"\1", text)
    text = re.sub(r"([(\[]) ", r"\1", text)
    text = re.sub(r" ('s|'re|'ve|'d|'ll|'m|n't)\b", r"\1", text)
    return re.sub(r"^ ", "", text, flags=re.M)


def corpora(shared: Path | None) -> dict[str, str]:
    texts = {"tinyshakespeare": bundled("tinyshakespeare.txt").read_text(encoding="utf-8"),
             "names": bundled("names.txt").read_text(encoding="utf-8")}
    reviews = []
    for name in ("amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt"):
        lines = bundled(name).read_text(encoding="utf-8").split("\n")
        reviews += [line.rsplit("\t", 1)[0].strip() for line in lines if "\t" in line]
    texts["reviews"] = "\n".join(reviews) + "\n"
    if shared is not None:
        texts["dinos"] = (shared / "dinos.txt").read_text(encoding="utf-8")
        texts["wikitext2-valid"] = wikitext_plain(
            (shared / "wikitext-2" / "valid.txt").read_text(encoding="utf-8"))
    return texts


def split(text: str, folder: Path) -> tuple[Path, Path]:
    lines = text.rstrip("\n").split("\n")
    cut = int(len(lines) * (1 - HELD_OUT))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    (folder / "valid.txt").write_text("\n".join(lines[cut:]) + "\n", encoding="utf-8")
    return folder / "train.txt", folder / "valid.txt"


def start_loss(valid: Path) -> tuple[float, int, int]:
    """The starter model's validation loss on ``valid`` read as the runs read it (one
    sequence per line, 32 rows, windows of 128): (nats/token, tokens, <UNK> tokens)."""
    lm = load_starter()
    lm = LanguageModel(lm.model, {"config": {"prose": False, "eval_batch": 32, "bptt": 128}})
    res = lm.evaluate(valid.read_text(encoding="utf-8"))
    return res["nll"], res["tokens"], res["oov"]


def pair(train: Path, valid: Path, seconds: int, folder: Path) -> dict:
    """Both runs at once, one core each; their best validation loss and steps."""
    charlm = [sys.executable, "-m", "charlm", "train", str(train), "--valid", str(valid),
              *RUN, "--time", f"{seconds}s", "--force"]
    arms = {"scratch": [*charlm, *SHAPE, "--out", str(folder / "scratch.npz")],
            "starter": [*charlm, "--init-from", "starter", "--out", str(folder / "starter.npz")]}
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    pin = shutil.which("taskset") and (os.cpu_count() or 1) >= 2
    procs = {}
    for core, (arm, cmd) in enumerate(arms.items()):
        cmd = ["taskset", "-c", str(core), *cmd] if pin else cmd
        procs[arm] = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                      stderr=open(folder / f"{arm}.log", "w"))
    out = {}
    for arm, p in procs.items():
        if p.wait():
            raise SystemExit(f"{arm} run failed: see {folder / (arm + '.log')}")
        _, meta, _ = checkpoint.load(folder / f"{arm}.npz")
        run = meta["run"]
        out[arm] = {"valid": run["best_valid"], "steps": run["step"],
                    "tokens_seen": run["tokens_seen"], "seconds": run["elapsed"]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", default="60", help="Time budgets, comma-separated [60].")
    ap.add_argument("--shared", type=Path, help="The folder of dinos.txt and wikitext-2/.")
    ap.add_argument("--only", help="Only these corpora (comma-separated names).")
    ap.add_argument("--work", type=Path, default=Path("starter-finetune"))
    ap.add_argument("--json", type=Path, help="Also write the rows as JSON lines here.")
    args = ap.parse_args(argv)
    texts = corpora(args.shared)
    if args.only:
        texts = {k: v for k, v in texts.items() if k in args.only.split(",")}
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {describe_machine(machine_info())}")
    print("| corpus | train / valid chars | valid tokens <UNK> to the starter | budget "
          "| scratch: steps, valid loss | starter: start | starter: steps, valid loss |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for name, text in texts.items():
        train, valid = split(text, args.work / name)
        v_text = valid.read_text(encoding="utf-8")
        loss0, _, unseen = start_loss(valid)
        for seconds in (int(s) for s in args.seconds.split(",")):
            t0 = time.time()
            res = pair(train, valid, seconds, args.work / name / f"{seconds}s")
            row = {"corpus": name, "train_chars": len(train.read_text(encoding="utf-8")),
                   "valid_chars": len(v_text), "unseen": unseen, "seconds": seconds,
                   "start": loss0, **res, "wall": time.time() - t0}
            rows.append(row)
            s, f = res["scratch"], res["starter"]
            print(f"| {name} | {row['train_chars']:,} / {len(v_text):,} | {unseen:,} "
                  f"| {seconds} s | {s['steps']:,}, {s['valid']:.3f} | {loss0:.3f} "
                  f"| {f['steps']:,}, {f['valid']:.3f} |", flush=True)
            if args.json:
                with open(args.json, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
