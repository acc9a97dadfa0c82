"""Long-range jobs: a basic RNN, a GRU and an LSTM of the same size (2×200) trained for the same
wall-clock budget on the same WikiText-2 text, then BLiMP's minimal pairs (`charlm pairs`) and
the gradient over distance (`charlm gradients`) before and after training; and the report that
turns the results of both levels into tables and the figure docs/longrange.png.

BLiMP is scored in WikiText-2's spelling (bench/blimp_as_wikitext.py), on a subset: every pair
of the six subject-verb agreement paradigms (6,000) and the first 50 pairs of each of the other
61 paradigms (3,050). BLiMP's overall figure is the mean of the per-paradigm accuracies (BLiMP
has 1,000 pairs in every paradigm), and so is the report's.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from .harness import Col, Harness, JobError

PUBLISHED = ("published (Warstadt et al. 2020): 5-gram 61.2 / 60.3 / 21.7, LSTM (83 M words) "
             "69.8 / 80.1 / 62.7, GPT-2 83.0 / 86.4 / 65.7, humans 88.6 / 90.9 / —  "
             "(overall / subject-verb agreement / distractor_agreement_relative_clause)")
FOCUS = ["distractor_agreement_relative_clause", "distractor_agreement_relational_noun"]
BLIMP_SENTENCES = 134000     # distinct sentences in all of BLiMP, about


def longrange_options(p) -> None:
    p.add_argument("--level", choices=["word", "char"], required=True)


def longrange(h: Harness, a) -> None:
    """One level: train the three cells, score BLiMP, measure the gradients; then the report
    of every level measured so far in OUT."""
    h.stem = f"longrange-{a.level}"
    h.fresh()

    def n(x, least):
        return max(least, round(x * h.scale))

    train_s, steps, windows = n(55, 2), n(200, 30), n(16, 4)
    if a.level == "word":
        shape = ["--level", "word", "--layers", 2, "--hidden", 200, "--embed", 200,
                 "--vocab-size", 10000]
    else:
        shape = ["--level", "char", "--layers", 2, "--hidden", 200, "--embed", 64]
    with tempfile.TemporaryDirectory() as work:
        w = Path(work)
        # the same text for every cell: the first 3 MB of train.txt (about 600k words, more
        # than a 55-second run reads) and the first 250 kB of valid.txt
        for name, size, least in (("train", 3_000_000, 200_000), ("valid", 250_000, 20_000)):
            data = Path(h.corpus(f"wikitext-2/{name}.txt")).read_bytes()[: n(size, least)]
            (w / f"{name}.txt").write_bytes(data)
        blimp = h.corpus("blimp")
        h.run(h.py("blimp_as_wikitext.py", blimp, w / "blimp", "--agreement", n(1000, 10),
                   "--other", n(50, 2)), record=False)
        models = []
        for cell in ("rnn", "gru", "lstm"):
            model = w / f"{cell}.npz"
            models += ["--model", model]
            h.run(h.charlm("train", w / "train.txt", "--valid", w / "valid.txt", *shape,
                           "--cell", cell, "--dropout", 0, "--time", f"{train_s}s",
                           "--eval-every", 0, "--seed", 1, "--out", model), record=False)
            d = h.run(h.charlm("info", "--model", model, "--json"), record=False, echo=False)[-1]
            h.record({"kind": "train", "level": a.level, "cell": cell, "config": d["config"],
                      "parameters": d["parameters"], "vocab_size": d["vocab_size"],
                      "steps": d["steps"], "tokens_seen": d["tokens_seen"],
                      "seconds": d["seconds"], "valid_loss": d["best_valid_loss"]})
        for cell in ("rnn", "gru", "lstm"):
            pairs = h.run(h.charlm("pairs", w / "blimp", "--model", w / f"{cell}.npz", "--json"),
                          record=False, echo=False)
            h.record({"kind": "pairs", "level": a.level, "cell": cell,
                      **without_oov(pairs[:-1], pairs[-1]["summary"])})
        for when, which in (("trained", models),
                            ("fresh", ["--cell", "rnn,gru,lstm", *shape])):
            g = h.run(h.charlm("gradients", w / "valid.txt", *which, "--steps", steps,
                               "--windows", windows, "--jacobian", "--jacobian-windows", 1,
                               "--json"), record=False, echo=False)[-1]
            h.record({"kind": "gradients", "level": a.level, "when": when, **g})
        if a.level == "char":
            # how fast `charlm pairs` is with charlm's default char model (2×512 LSTM,
            # untrained: the speed does not depend on the weights) on about 2,000 sentences
            h.run(h.py("blimp_as_wikitext.py", blimp, w / "speed", "--agreement", n(170, 5),
                       "--other", 0), record=False)
            (w / "tiny.txt").write_bytes((w / "valid.txt").read_bytes()[:20000])
            h.run(h.charlm("train", w / "tiny.txt", "--valid", w / "tiny.txt", "--steps", 1,
                           "--eval-batch", 4, "--out", w / "default.npz"), record=False,
                  echo=False, stderr=open(w / "default.log", "w"))
            s = h.run(h.charlm("pairs", w / "speed", "--model", w / "default.npz", "--json"),
                      record=False, echo=False)[-1]["summary"]
            h.record({"kind": "speed", "model": "default char 2x512 LSTM",
                      "sentences": s["sentences"], "seconds": s["seconds"]})
    report(h, [h.path(".jsonl")])


def without_oov(rows: list[dict], summary: dict) -> dict:
    """The summary, with each accuracy also without the pairs that have an <UNK> (what
    --skip-oov reports)."""
    for key, field in (("paradigms", "uid"), ("phenomena", "phenomenon")):
        for name, g in summary[key].items():
            kept = [r["correct"] for r in rows if r[field] == name and not r["oov"]]
            g["accuracy_without_oov"] = sum(kept) / len(kept) if kept else None
    kept = [r["correct"] for r in rows if not r["oov"]]
    summary["overall"]["accuracy_without_oov"] = sum(kept) / len(kept) if kept else None
    return summary


# --------------------------------------------------------------------- the report
def report_options(p) -> None:
    p.add_argument("jsonl", nargs="*", help="results of `longrange` [default: OUT/"
                                            "longrange-word.jsonl and OUT/longrange-char.jsonl]")
    p.add_argument("--png", help="write the gradient figure here (needs matplotlib)")


def longrange_report(h: Harness, a) -> None:
    """The tables of `longrange` (both levels) and, with --png, the figure."""
    paths = a.jsonl or [p for p in (h.out / "longrange-word.jsonl",
                                    h.out / "longrange-char.jsonl") if p.exists()]
    report(h, paths, a.png)


def _pct(x):
    return "—" if x is None else f"{100 * x:.1f}"


def _macro(groups: dict, key: str):
    accs = [g.get(key) for g in groups.values() if g.get(key) is not None]
    return sum(accs) / len(accs) if accs else None


def report(h: Harness, paths, png: str | None = None) -> None:
    rows = [json.loads(x) for p in paths for x in Path(p).read_text(encoding="utf-8").splitlines()
            if x.strip()]
    train = {(r["level"], r["cell"]): r for r in rows if r["kind"] == "train"}

    def both(g: dict | None, overall: bool = False) -> str:
        if overall:
            return f"{_pct(_macro(g, 'accuracy'))} / {_pct(_macro(g, 'accuracy_without_oov'))}"
        g = g or {}
        return f"{_pct(g.get('accuracy'))} / {_pct(g.get('accuracy_without_oov'))}"

    def ppl(r):
        vl = train.get((r["level"], r["cell"]), {}).get("valid_loss")
        return None if vl is None else f"{math.exp(vl):.1f}"

    pairs = [r for r in rows if r["kind"] == "pairs"]
    h.table(pairs, [
        Col("level", lambda r: r["level"], True), Col("cell (2×200)", lambda r: r["cell"], True),
        Col("tokens seen", lambda r: f"{train[(r['level'], r['cell'])]['tokens_seen']:,}"),
        Col("valid ppl", ppl),
        Col("BLiMP", lambda r: both(r["paradigms"], overall=True)),
        Col("subject–verb agreement",
            lambda r: both(r["phenomena"].get("subject_verb_agreement"))),
        *[Col(u.replace("distractor_agreement_", "distractor, ").replace("_", " "),
              lambda r, u=u: both(r["paradigms"].get(u))) for u in FOCUS],
        Col("pairs (with <UNK>)", lambda r: f"{r['overall']['scored']:,} "
                                             f"({r['overall']['oov']:,})")],
            title="BLiMP accuracy in %: all pairs / without the pairs that have an <UNK>")
    h.say(PUBLISHED)
    h.say()
    for r in rows:
        if r["kind"] in ("pairs", "speed"):
            rate = r["sentences"] / r["seconds"]
            what = r.get("model") or f"{r['level']} 2×200 {r['cell']}"
            h.say(f"scoring speed, {what}: {rate:,.0f} sentences/s ({r['sentences']:,} in "
                  f"{r['seconds']:.1f} s; all of BLiMP: about "
                  f"{BLIMP_SENTENCES / rate / 60:.1f} min)")
    h.say()
    curves = [{"level": r["level"], "label": f"{m['cell']} ({r['when']})", "K": r["steps"], **c}
              for r in rows if r["kind"] == "gradients" for m in r["models"]
              for c in m["curves"]]
    h.table(curves, [
        Col("level", lambda c: c["level"], True), Col("model", lambda c: c["label"], True),
        Col("path", lambda c: c["path"], True),
        Col("‖·‖ at k = 0", lambda c: f"{c['mean'][0]:.2e}"),
        Col("at k = K", lambda c: f"{c['mean'][-1]:.2e}"),
        Col("decay per step", lambda c: "—" if c["decay_per_step"] is None
            else f"{c['decay_per_step']:.3f}"),
        Col("memory span", lambda c: f"> {c['K']}" if c["memory_span"] is None
            else c["memory_span"])],
            title="the gradient ‖∂L<T>/∂a<T-k>‖ over distance")
    if png:
        figure(rows, png)


def figure(rows, path: str) -> None:
    try:
        import matplotlib  # optional: pip install 'charlm[plot]'
    except ImportError:
        raise JobError("--png needs matplotlib: pip install 'charlm[plot]'.") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grads = [r for r in rows if r["kind"] == "gradients"]
    levels = sorted({r["level"] for r in grads}, reverse=True)    # word, char
    fig, axes = plt.subplots(1, len(levels), figsize=(6 * len(levels), 4.5), squeeze=False)
    colours = {"rnn": "tab:red", "gru": "tab:green", "lstm": "tab:blue"}
    for ax, level in zip(axes[0], levels):
        for r in grads:
            if r["level"] != level:
                continue
            for m in r["models"]:
                for c in m["curves"]:
                    if c["path"].startswith("jacobian"):
                        continue
                    style = "-" if r["when"] == "trained" else ":"
                    if c["path"] == "c":
                        style = "--" if r["when"] == "trained" else "-."
                    ax.semilogy(range(len(c["mean"])), c["mean"], style,
                                color=colours[m["cell"]],
                                label=f"{m['cell']} {c['path']} ({r['when']})")
        ax.set_title(f"{level} level, 2×200, WikiText-2")
        ax.set_xlabel("distance k (steps back)")
        ax.set_ylabel("mean ‖∂L<T>/∂a<T-k>‖")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")
