"""Turn the JSON lines of the issue-13 jobs (longrange_job.sh) into the README's tables and,
with --png, a figure of the gradients over distance (needs matplotlib).

    python3 bench/longrange_report.py OUT/longrange_word.jsonl OUT/longrange_char.jsonl \
        [--png docs/longrange.png]

BLiMP overall is the mean of the per-paradigm accuracies (the jobs score a subset in which the
agreement paradigms are complete and the others sampled, so the mean over paradigms is the
figure comparable to BLiMP's overall, where every paradigm has 1,000 pairs).
"""

from __future__ import annotations

import argparse
import json
import math

PUBLISHED = ("published (Warstadt et al. 2020): 5-gram 61.2 / 60.3 / 21.7, LSTM (83 M words) "
             "69.8 / 80.1 / 62.7, GPT-2 83.0 / 86.4 / 65.7, humans 88.6 / 90.9 / —  "
             "(overall / subject-verb agreement / distractor_agreement_relative_clause)")
FOCUS = ["distractor_agreement_relative_clause", "distractor_agreement_relational_noun"]


def load(paths):
    rows = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def pct(x):
    return "—" if x is None else f"{100 * x:.1f}"


def _macro(groups: dict, key: str):
    accs = [g.get(key) for g in groups.values()]
    accs = [a for a in accs if a is not None]
    return sum(accs) / len(accs) if accs else None


def pairs_table(rows) -> list[str]:
    """Accuracies in per cent; each cell 'all pairs / without the pairs with <UNK>'."""
    train = {(r["level"], r["cell"]): r for r in rows if r["kind"] == "train"}
    out = ["| level | cell | params | tokens seen | valid ppl | BLiMP (mean of paradigms) | "
           "subject-verb agreement | distractor, relative clause | distractor, relational noun "
           "| pairs (with <UNK>) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["kind"] != "pairs":
            continue
        t = train.get((r["level"], r["cell"]), {})

        def both(g_all, g_kept):
            return f"{pct(g_all)} / {pct(g_kept)}"

        sva = r["phenomena"].get("subject_verb_agreement", {})
        cells = [both(_macro(r["paradigms"], "accuracy"),
                      _macro(r["paradigms"], "accuracy_without_oov")),
                 both(sva.get("accuracy"), sva.get("accuracy_without_oov"))]
        for u in FOCUS:
            g = r["paradigms"].get(u, {})
            cells.append(both(g.get("accuracy"), g.get("accuracy_without_oov")))
        vl = t.get("valid_loss")
        out.append(f"| {r['level']} | {r['cell']} | {t.get('parameters', 0):,} | "
                   f"{t.get('tokens_seen', 0):,} | "
                   f"{'—' if vl is None else f'{math.exp(vl):.1f}'} | " + " | ".join(cells)
                   + f" | {r['overall']['scored']:,} ({r['overall']['oov']:,}) |")
    out.append("")
    out.append("accuracies in %: all pairs / without the pairs that have an <UNK>")
    out.append("")
    out.append(PUBLISHED)
    out.append("")
    for r in rows:
        if r["kind"] == "pairs":
            rate = r["sentences"] / r["seconds"]
            out.append(f"scoring speed, {r['level']} 2×200 {r['cell']}: {rate:,.0f} sentences/s "
                       f"({r['sentences']:,} in {r['seconds']:.1f} s; all 134,000 of BLiMP: "
                       f"about {134000 / rate / 60:.1f} min)")
        elif r["kind"] == "speed":
            rate = r["sentences"] / r["seconds"]
            out.append(f"scoring speed, {r['model']}: {rate:,.0f} sentences/s "
                       f"({r['sentences']:,} in {r['seconds']:.1f} s; all 134,000 of BLiMP: "
                       f"about {134000 / rate / 60:.1f} min)")
    return out


def gradients_table(rows) -> list[str]:
    out = ["| level | model | path | ‖·‖ at k = 0 | at k = K | decay per step | memory span |",
           "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        if r["kind"] != "gradients":
            continue
        K = r["steps"]
        for m in r["models"]:
            for c in m["curves"]:
                d, s = c["decay_per_step"], c["memory_span"]
                label = f"{m['cell']} ({r['when']})"
                out.append(f"| {r['level']} | {label} | {c['path']} | {c['mean'][0]:.2e} | "
                           f"{c['mean'][-1]:.2e} | {'—' if d is None else f'{d:.3f}'} | "
                           f"{f'> {K}' if s is None else s} |")
    return out


def figure(rows, path: str) -> None:
    import matplotlib
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jsonl", nargs="+", help="longrange_<level>.jsonl files")
    ap.add_argument("--png", help="write the gradient figure here (needs matplotlib)")
    args = ap.parse_args()
    rows = load(args.jsonl)
    print("\n".join(pairs_table(rows)))
    print()
    print("\n".join(gradients_table(rows)))
    if args.png:
        figure(rows, args.png)


if __name__ == "__main__":
    main()
