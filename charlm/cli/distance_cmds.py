"""``charlm gradients`` and ``charlm pairs``: long-range dependencies, made visible."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from tqdm import tqdm

from ..errors import ConfigError, CorpusError
from ..nn.model import Model, ModelConfig
from ..text.bundled import bundled
from ..text.vocab import Vocab, sequence_chunks
from ..use.gradients import SPAN_RATIO, chart, measure
from ..use.pairs import Pair, read_jsonl, read_pairs, read_tsv, score_pairs, summarise
from .common import (
    LEVEL_HELP,
    MODEL_HELP,
    app,
    arg_text,
    emit_json,
    err,
    guarded,
    json_ratios,
    live_progress,
    open_model,
    out,
    pyplot,
    read_path,
)
from .render import percent

MAX_TEXT_CHARS = 4 << 20   # windows are drawn from the first 4 MB of a corpus: plenty, and fast


# -------------------------------------------------------------------- gradients
@app.command()
@guarded
def gradients(
    corpus: Optional[Path] = typer.Argument(
        None, help="Text the windows are drawn from ('-' = stdin) [default: the bundled tiny "
                   "Shakespeare]."),
    model: Optional[List[Path]] = typer.Option(
        None, "--model", help="A trained model file; repeat to compare several."),
    cell: Optional[str] = typer.Option(
        None, "--cell", help="Fresh (untrained) models instead, comma-separated: rnn,gru,lstm."),
    level: str = typer.Option("char", "--level", help="Fresh models: char or word vocabulary."),
    layers: int = typer.Option(2, "--layers", help="Fresh models: recurrent layers."),
    hidden: int = typer.Option(128, "--hidden", help="Fresh models: hidden size n_a."),
    embed: int = typer.Option(64, "--embed", help="Fresh models: embedding size (0 = one-hot)."),
    activation: str = typer.Option("tanh", "--activation", help="Fresh basic RNN: tanh or relu."),
    vocab_size: int = typer.Option(10000, "--vocab-size",
                                   help="Fresh word models: most frequent words kept."),
    steps: int = typer.Option(200, "--steps", help="Largest distance K (steps back)."),
    warmup: int = typer.Option(50, "--warmup", help="Steps run before the K measured ones."),
    windows: int = typer.Option(32, "--windows", help="Windows of text averaged over."),
    layer: Optional[int] = typer.Option(None, "--layer",
                                        help="Which layer's hidden state [default: the top]."),
    jacobian: bool = typer.Option(False, "--jacobian",
                                  help="Also the spectral norm of ∂a<T>/∂a<T-k> (exact)."),
    jacobian_windows: int = typer.Option(4, "--jacobian-windows",
                                         help="Windows used for --jacobian."),
    seed: int = typer.Option(0, "--seed", help="Seed of the windows and of fresh models."),
    every: int = typer.Option(0, "--every", show_default=False,
                              help="Table rows every this many k [default: about 20 rows]."),
    plot: Optional[Path] = typer.Option(None, "--plot",
                                        help="Write the curves to a PNG (needs matplotlib)."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as one JSON object."),
):
    """How far back does the gradient reach? ‖∂L<T>/∂a<T-k>‖ for k = 0 … K on real text."""

    if model and cell:
        raise ConfigError("Give --model (trained models) or --cell (fresh ones), not both.")
    path = corpus if corpus is not None else bundled()
    text = read_path(path, what="the corpus")[:MAX_TEXT_CHARS]
    rng = np.random.default_rng(seed)
    todo = []                                     # (label, model)
    if cell:
        cells = [c.strip() for c in cell.split(",") if c.strip()]
        if level not in ("char", "word"):
            raise ConfigError(f"Unknown level {level!r}. Use char or word.")
        vocab = Vocab.build_from_chunks(sequence_chunks(text, level=level), level,
                                        max_size=vocab_size if level == "word" else None)
        for c in cells:
            cfg = ModelConfig(cell=c, layers=layers, hidden=hidden, embed=embed, dropout=0.0,
                              activation=activation if c == "rnn" else "tanh")
            todo.append((f"{c} (fresh)", Model.create(cfg, vocab, rng)))
    else:
        for p in model or [None]:
            m, _, mp = open_model("char", p)
            todo.append((mp.stem, m))
    results = []
    for label, m in todo:
        ids = m.vocab.encode_chunks(sequence_chunks(text, level=m.vocab.level))
        t0 = time.perf_counter()
        results.append(measure(m, label, ids, steps=steps, warmup=warmup, n_windows=windows,
                               layer=layer, jacobian=jacobian, jacobian_windows=jacobian_windows,
                               rng=np.random.default_rng(seed)))
        err.print(f"{label}: measured in {time.perf_counter() - t0:.1f}s")
    doc = {"corpus": str(path), "steps": steps, "warmup": warmup, "windows": windows,
           "seed": seed, "models": [r.to_json() for r in results]}
    if plot is not None:
        _plot_curves(doc, plot)
    if as_json:
        emit_json(doc)
        return
    _print_gradients(doc, every)


def _curve_label(model: dict, curve: dict) -> str:
    return f"{model['label']} {curve['path']}"


def _print_gradients(doc: dict, every: int) -> None:

    K = doc["steps"]
    every = every or max(1, K // 20)
    ks = sorted(set(range(0, K + 1, every)) | {K})
    for mdl in doc["models"]:
        shape = f"{mdl['level']}-level {mdl['layers']}×{mdl['cell'].upper()} {mdl['hidden']}"
        for cv in mdl["curves"]:
            what = ("‖∂a<T>/∂" if cv["path"].startswith("jacobian") else "‖∂L<T>/∂") + \
                cv["path"].split()[-1] + "<T-k>‖"
            table = Table(title=Text(f"{mdl['label']} ({shape}): {what}"), show_edge=False)
            for col in ("k", "mean", "median", "10th pct", "90th pct"):
                table.add_column(col, justify="right")
            for k in ks:
                table.add_row(str(k), *(f"{cv[s][k]:.3e}" for s in ("mean", "median", "p10",
                                                                     "p90")))
            out.print(table)
    out.print(Text(f"\nsummary ({doc['windows']} windows, K = {K}; memory span = first k where "
                   f"the mean falls below {SPAN_RATIO:g} × its value at k = 0)"))
    table = Table(show_edge=False)
    for col in ("model", "path", "at k = 0", f"at k = {K}", "decay per step", "memory span"):
        table.add_column(col, justify="left" if col in ("model", "path") else "right")
    for mdl in doc["models"]:
        for cv in mdl["curves"]:
            d, s = cv["decay_per_step"], cv["memory_span"]
            table.add_row(Text(mdl["label"]), cv["path"], f"{cv['mean'][0]:.3e}",
                          f"{cv['mean'][-1]:.3e}", "-" if d is None else f"{d:.4f}",
                          f"> {K}" if s is None else str(s))
    out.print(table)
    series, marks = {}, []
    for m in doc["models"]:
        for c in m["curves"]:
            if c["path"].startswith("jacobian"):
                continue
            series[_curve_label(m, c)] = np.array(c["mean"])
            # R, G, L for the cells' a, lower case for the LSTM's c; digits once taken
            mark = m["cell"][0].upper() if c["path"] == "a" else m["cell"][0]
            marks.append(mark if mark not in marks else str(len(marks) + 1))
    out.print(Text("\nmean ‖∂L<T>/∂a<T-k>‖ (and ‖∂L<T>/∂c<T-k>‖), log scale"))
    for line in chart(series, marks=marks):
        out.print(Text(line))


def _plot_curves(doc: dict, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    # one colour per model, one line style per path
    styles = {"a": "-", "c": "-.", "jacobian a": "--", "jacobian c": ":"}
    for n, mdl in enumerate(doc["models"]):
        colour = f"C{n % 10}"
        for cv in mdl["curves"]:
            k = np.arange(len(cv["mean"]))
            ax.semilogy(k, cv["mean"], styles.get(cv["path"], "-"), color=colour,
                        label=_curve_label(mdl, cv))
            ax.fill_between(k, cv["p10"], cv["p90"], color=colour, alpha=0.12)
    ax.set_xlabel("distance k (steps back)")
    ax.set_ylabel("norm (mean; band: 10th–90th percentile)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    err.print(f"Wrote {path}")


# ------------------------------------------------------------------------ pairs
@app.command()
@guarded
def pairs(
    file: Optional[Path] = typer.Argument(
        None, help="BLiMP .jsonl file or folder, or a TSV of good<TAB>bad lines ('-' = stdin) "
                   "[default: the bundled 300 agreement pairs]."),
    good: Optional[str] = typer.Option(None, "--good", help="One pair's grammatical sentence."),
    bad: Optional[str] = typer.Option(None, "--bad", help="One pair's ungrammatical sentence."),
    level: str = typer.Option("char", "--level", help=LEVEL_HELP),
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    skip_oov: bool = typer.Option(False, "--skip-oov",
                                  help="Leave pairs with <UNK> tokens out of the accuracy."),
    batch: int = typer.Option(256, "--batch", help="Sentences scored in parallel."),
    as_json: bool = typer.Option(False, "--json",
                                 help="One JSON object per pair, then one with the summary."),
):
    """Minimal pairs: is the grammatical sentence the more probable one?"""

    if (good is None) != (bad is None):
        raise ConfigError("Give both --good and --bad.")
    if good is not None:
        if file is not None:
            raise ConfigError("Give a file of pairs or --good/--bad, not both.")
        todo = [Pair(arg_text(good, "--good sentence"), arg_text(bad, "--bad sentence"))]
    elif str(file) == "-":   # JSON lines or TSV, told apart by the first character
        text = read_path(file, what="the pairs")
        todo = (read_jsonl if text.lstrip().startswith("{") else read_tsv)(text,
                                                                          "standard input")
        if not todo:
            raise CorpusError("Standard input holds no pairs. Give BLiMP JSON lines or "
                              "good<TAB>bad lines.")
    else:
        todo = read_pairs(file)
    m, _, _ = open_model(level, model, starter=True)
    t0 = time.perf_counter()
    n_sent = len({s for p in todo for s in (p.good, p.bad)})
    with tqdm(total=n_sent, unit="sentence", file=sys.stderr,
              disable=n_sent < 2000 or not live_progress(),
              leave=False) as bar:
        results = score_pairs(m, todo, batch, on_batch=bar.update)
    seconds = time.perf_counter() - t0
    summary = summarise(results, skip_oov)
    summary["seconds"] = seconds
    summary["sentences"] = n_sent
    if as_json:
        for r in results:
            emit_json(r.to_json())
        emit_json({"summary": json_ratios(summary)})
        return
    if len(results) == 1:
        r = results[0]
        out.print(Text(f"good {r.log_prob_good:10.4f}  {r.pair.good}"))
        out.print(Text(f"bad  {r.log_prob_bad:10.4f}  {r.pair.bad}"))
        out.print(f"ln P(good) - ln P(bad) = {r.diff:+.4f}: "
                  + ("right (the good sentence is more probable)" if r.correct else
                     "wrong (the bad sentence is at least as probable)")
                  + (f"; {r.oov} token(s) read as <UNK>" if r.oov else ""))
        return
    ov = summary["overall"]
    for title, key in (("phenomenon", "phenomena"), ("paradigm (UID)", "paradigms")):
        if not summary[key]:
            continue
        table = Table(show_edge=False)
        for col in (title, "pairs", "OOV", "scored", "correct", "accuracy"):
            table.add_column(col, justify="left" if col == title else "right")
        for name, g in summary[key].items():
            table.add_row(escape(name), *_counts(g))
        out.print(table)
    out.print(f"overall: {_pct(ov['accuracy'])} of {ov['scored']:,} pairs right "
              f"({ov['correct']:,}); {ov['oov']:,} pairs with <UNK> "
              + ("left out" if skip_oov else "counted (--skip-oov leaves them out)")
              + f"; {n_sent:,} sentences scored in {seconds:.1f}s")


def _pct(acc) -> str:
    return percent(acc)


def _counts(g: dict) -> list[str]:
    return [f"{g['pairs']:,}", f"{g['oov']:,}", f"{g['scored']:,}", f"{g['correct']:,}",
            _pct(g["accuracy"])]
