"""``charlm sample``, ``score``, ``eval`` and ``info``: using a trained model."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from tqdm import tqdm

from ..api import read_text
from ..errors import CharlmError, ConfigError, CorpusError
from ..render import format_duration, format_prob, sparkline
from ..vocab import EOS_ID, UNK_ID
from .common import (LEVEL_HELP, MODEL_HELP, app, arg_text, emit_json, err, guarded,
                     open_model, out, read_stdin)

# ----------------------------------------------------------------------- sample
@app.command()
@guarded
def sample(
    level: str = typer.Option("char", "--level", help=LEVEL_HELP),
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    num: int = typer.Option(1, "-n", "--num", help="How many samples."),
    length: Optional[int] = typer.Option(
        None, "--length", help="Most tokens per sample [default: 200 chars or 50 words]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (same seed, same text)."),
    temperature: float = typer.Option(1.0, "--temperature",
                                      help="Softmax temperature; 0 = always the likeliest."),
    top_k: int = typer.Option(0, "--top-k", help="Draw only from the k likeliest; 0 = all."),
    top_p: float = typer.Option(1.0, "--top-p",
                                help="Draw from the smallest set with this much probability."),
    prime: Optional[str] = typer.Option(None, "--prime", help="Text the sample continues."),
    allow_unk: bool = typer.Option(False, "--allow-unk", help="Let <UNK> be drawn."),
    no_stop: bool = typer.Option(False, "--no-stop",
                                 help="Go on through <EOS> (as a line break) to --length."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per sample."),
):
    """Sample new text: draw each token from the softmax and feed it back."""
    from ..generate import check_options, sample as draw

    m, meta, path = open_model(level, model)
    vocab = m.vocab
    if num < 1:
        raise ConfigError(f"-n/--num must be at least 1 (got {num}).")
    if seed is not None and seed < 0:
        raise ConfigError(f"--seed must be 0 or more (got {seed}).")
    length = length if length is not None else (200 if vocab.level == "char" else 50)
    check_options(temperature, top_k, top_p, length)
    prime_ids = None
    if prime:
        prime = arg_text(prime, "--prime text")
        oov = vocab.oov_tokens(prime)
        if oov:
            err.print(f"Warning: the prime has {len(oov)} token(s) outside the vocabulary, "
                      f"read as <UNK>: {' '.join(repr(t) for t in oov[:10])}")
        prime_ids = vocab.encode(prime)
        bptt = (meta.get("config") or {}).get("bptt")
        if bptt and len(prime_ids) > bptt:
            err.print(f"Warning: the prime is {len(prime_ids)} tokens, longer than the "
                      f"{bptt}-step windows the model was trained on; it may lose track of "
                      "its start.")
    if (meta.get("config") or {}).get("reverse"):
        err.print("Warning: this model was trained with --reverse: it writes each line from "
                  "its end, so the sample (and --prime) reads backwards.")
    rng = np.random.default_rng(seed)
    for i in range(num):
        prefix = prime or ""
        if not as_json:
            sys.stdout.write(prefix)
        s = draw(m, rng, length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                 prime_ids=prime_ids, allow_unk=allow_unk, stop_at_eos=not no_stop,
                 on_token=None if as_json else TextStream(vocab))
        if as_json:
            emit_json({"index": i, "text": prefix + vocab.decode(s.ids), "prime": prime,
                       "tokens": [vocab.tokens[t] for t in s.ids], "n_tokens": len(s.ids),
                       "log_prob": s.log_prob, "stopped_at_eos": s.stopped_at_eos,
                       "seed": seed})
        else:
            sys.stdout.write("\n")
            sys.stdout.flush()


class TextStream:
    """Writes each sampled token to stdout as it arrives, spaced as ``Vocab.decode`` spaces
    it (which depends only on the token before)."""

    def __init__(self, vocab):
        self.vocab = vocab
        self.prev: int | None = None

    def __call__(self, tok: int) -> None:
        if self.prev is None:
            piece = self.vocab.decode([tok])
        else:
            piece = self.vocab.decode([self.prev, tok])[len(self.vocab.decode([self.prev])):]
        sys.stdout.write(piece)
        sys.stdout.flush()
        self.prev = tok


# ------------------------------------------------------------------------ score
@app.command()
@guarded
def score(
    sentences: Optional[List[str]] = typer.Argument(None, help="Sentences to score."),
    file: Optional[Path] = typer.Option(None, "--file",
                                        help="Score each line of a file ('-' = stdin)."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of --file."),
    level: str = typer.Option("char", "--level", help=LEVEL_HELP),
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    base: str = typer.Option("e", "--base", help="Logarithm base: e, 2 or 10."),
    per_token: bool = typer.Option(False, "--per-token",
                                   help="Show every P(y<t> | ...) and its surprisal."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per sentence."),
):
    """How probable is a sentence? P(y<1>) · P(y<2>|y<1>) · … · P(<EOS>|…)."""
    from ..score import score_many

    texts = [arg_text(t, "sentence") for t in sentences or []]
    if file is not None:
        raw = read_stdin(encoding) if str(file) == "-" else read_text(file, encoding)
        texts += [t for t in raw.split("\n") if t.strip()]
    elif texts == ["-"]:
        texts = [t for t in read_stdin(encoding).split("\n") if t.strip()]
    if not texts:
        raise ConfigError("Nothing to score. Give a sentence, or --file FILE.")
    if base not in ("e", "2", "10"):
        raise ConfigError(f"--base must be e, 2 or 10 (got {base}).")
    logb = {"e": 1.0, "2": math.log(2), "10": math.log(10)}[base]
    m, meta, _ = open_model(level, model)
    reverse = bool((meta.get("config") or {}).get("reverse"))
    results = list(score_many(m, [t[::-1] for t in texts] if reverse else texts))
    for r, t in zip(results, texts if reverse else []):
        r.text = t   # a backward LM (--reverse) scored the sentence read from its end
    for r in results:
        if not r.text.strip():
            err.print("Warning: an empty sentence scores only its <EOS>.")
        elif r.n_oov == r.n_tokens - 1:
            err.print(f"Warning: every token of {r.text!r} is outside the vocabulary; it is "
                      "scored through <UNK>.")
        elif r.n_oov:
            oov = m.vocab.oov_tokens(r.text)
            err.print(f"Warning: {r.n_oov} token(s) of {r.text!r} are outside the vocabulary "
                      f"and scored as <UNK>: {' '.join(repr(t) for t in oov[:10])}")
    if as_json:
        for r in results:
            obj = {"text": r.text, "log_prob": r.log_prob / logb, "base": base,
                   "probability": math.exp(r.log_prob), "perplexity": r.perplexity,
                   "n_tokens": r.n_tokens, "n_oov": r.n_oov}
            if per_token:
                obj["tokens"] = [{"token": m.vocab.tokens[i], "log_prob": float(lp) / logb,
                                  "surprisal_bits": float(-lp / math.log(2))}
                                 for i, lp in zip(r.ids, r.log_probs)]
            emit_json(obj)
        return
    lname = {"e": "ln", "2": "log2", "10": "log10"}[base]
    if len(results) == 1:
        r = results[0]
        out.print(Text(f"P({r.text}) = {format_prob(r.log_prob)}"))  # Text: no markup
        out.print(f"{lname} P = {r.log_prob / logb:.4f}   perplexity {r.perplexity:.3f} per "
                  f"token   {r.n_tokens} tokens (with <EOS>)   {r.n_oov} OOV")
    else:
        ranked = sorted(results, key=lambda r: -r.log_prob)
        best = ranked[0].log_prob
        table = Table(show_edge=False, pad_edge=False)
        for col, j in (("#", "right"), ("sentence", "left"), ("P", "right"),
                       (f"{lname} P", "right"), ("ppl/token", "right"), ("tokens", "right"),
                       ("OOV", "right"), ("× best", "right")):
            table.add_column(col, justify=j)
        for k, r in enumerate(ranked, 1):
            table.add_row(str(k), Text(r.text), format_prob(r.log_prob),
                          f"{r.log_prob / logb:.3f}", f"{r.perplexity:.3f}", str(r.n_tokens),
                          str(r.n_oov), format_prob(r.log_prob - best))
        out.print(table)
    if per_token:
        for r in results:
            _per_token(m, r)


def _per_token(m, r) -> None:
    line = Text()
    table = Table(title=Text(r.text), show_edge=False)
    table.add_column("t", justify="right")
    table.add_column("token")
    table.add_column("P(y<t> | …)", justify="right")
    table.add_column("surprisal (bits)", justify="right")
    for t, (i, lp) in enumerate(zip(r.ids, r.log_probs), 1):
        tok = m.vocab.tokens[i]
        bits = -lp / math.log(2)
        heat = min(1.0, bits / 12.0)  # 0 bits green ... 12+ bits red
        color = f"rgb({int(255 * heat)},{int(200 * (1 - heat))},60)"
        shown = "⏎" if i == EOS_ID else ("·" if tok == " " else tok)
        line.append(shown + ("" if m.vocab.level == "char" else " "), style=f"bold {color}")
        table.add_row(str(t), shown, f"{math.exp(lp):.4g}", f"{bits:.2f}",
                      style=color if i != UNK_ID else f"{color} italic")
    out.print(table)
    out.print(line)


# ------------------------------------------------------------------------- eval
@app.command("eval")
@guarded
def eval_cmd(
    file: Path = typer.Argument(..., help="A held-out text file, one sequence per line (a "
                                          "CoNLL file for a tagger)."),
    level: str = typer.Option("char", "--level", help=LEVEL_HELP),
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the file."),
    batch: int = typer.Option(64, "--batch", help="Sequences scored in parallel."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
):
    """Perplexity (and bits per character) of a held-out file; for a tagger, token accuracy
    and entity precision, recall and F1 (overall and per type)."""
    from ..score import score_many

    if batch < 1:
        raise ConfigError(f"--batch must be at least 1 (got {batch}).")
    m, meta, _ = open_model(level, model, tasks=("lm", "tag"))
    if m.config.task == "tag":   # a CoNLL file: accuracy and entity P/R/F1
        from ..tagger import Tagger
        from .tag_cmds import eval_tagger
        return eval_tagger(Tagger(m, meta), file, as_json)
    text = read_text(file, encoding)
    from ..vocab import split_sequences
    lines = list(split_sequences(text))
    if not any(line.strip() for line in lines):
        raise CorpusError(f"{file} has no text to evaluate. Give a non-empty file.")
    total_nll = oov_nll = 0.0
    n_tok = n_oov = n_chars = 0
    with tqdm(total=len(lines), unit="line", file=sys.stderr, disable=len(lines) < 2000,
              leave=False) as bar:
        for r in score_many(m, lines, batch, on_batch=bar.update):
            total_nll -= r.log_prob
            n_tok += r.n_tokens
            unk = r.ids == UNK_ID
            n_oov += int(unk.sum())
            oov_nll -= float(r.log_probs[unk].sum())
            n_chars += len(r.text) + 1
    mean = total_nll / n_tok
    res = {"file": str(file), "tokens": n_tok, "oov": n_oov, "sequences": len(lines),
           "nll": mean, "perplexity": math.exp(min(mean, 700)),
           "perplexity_without_oov": (math.exp(min((total_nll - oov_nll) / (n_tok - n_oov),
                                                   700)) if n_tok > n_oov else None),
           "bits_per_char": total_nll / math.log(2) / n_chars}
    if as_json:
        emit_json(res)
        return
    out.print(f"{escape(str(file))}: {len(lines):,} sequences, {n_tok:,} tokens (with <EOS>), "
              f"{n_oov:,} OOV")
    out.print(f"mean NLL {mean:.4f} nats/token   perplexity {res['perplexity']:.3f}"
              + (f"   (without OOV positions {res['perplexity_without_oov']:.3f})"
                 if res["perplexity_without_oov"] is not None and n_oov else ""))
    out.print(f"bits per character {res['bits_per_char']:.4f}")


# ------------------------------------------------------------------------- info
@app.command()
@guarded
def info(
    level: str = typer.Option("char", "--level", help=LEVEL_HELP),
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    plot: Optional[Path] = typer.Option(None, "--plot",
                                        help="Write training/validation curves to a PNG "
                                             "(needs matplotlib)."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
):
    """What a model file holds: config, vocabulary, parameters, training history."""
    m, meta, path = open_model(level, model, tasks=("lm", "tag", "classify"))
    from ..metrics import is_iob
    metric = ("valid_loss" if m.labels is None else
              "valid_f1" if m.config.task == "tag" and is_iob(m.labels) else "valid_accuracy")
    run = meta.get("run") or {}
    layers = {}
    for k, v in m.params.items():
        group = k.split(".")[0] if "." in k else ("embedding" if k == "E" else "output")
        layers[group] = layers.get(group, 0) + int(v.size)
    hist = run.get("history") or []
    res = {"path": str(path), "config": m.config.to_json(), "level": m.vocab.level,
           "vocab_size": len(m.vocab), "vocab_sample": m.vocab.tokens[:20],
           "parameters": m.n_params(), "parameters_per_layer": layers,
           "train_config": meta.get("config"),
           "steps": run.get("step"), "epochs": run.get("epoch"),
           "tokens_seen": run.get("tokens_seen"), "seconds": run.get("elapsed"),
           "best_valid_loss": run.get("best_valid"), "best_step": run.get("best_step"),
           "finished": run.get("finished"), "history": hist,
           "task": m.config.task, "labels": m.labels, "best_valid_metric": metric}
    if plot is not None:
        _plot(hist, plot)
    if as_json:
        emit_json(res)
        return
    c = m.config
    shape = f"{c.layers}×{'bidirectional ' if c.bidirectional else ''}{c.cell.upper()} {c.hidden}"
    shape += {"rnn": f" ({c.activation})", "gru": " simplified" if c.simplified else "",
              "lstm": " peephole" if c.peephole else ""}[c.cell]
    out.print(f"[bold]{escape(str(path))}[/bold]  {m.vocab.level}-level {shape}, "
              f"{'embedding ' + str(c.embed) if c.embed else 'one-hot inputs'}, "
              f"dropout {c.dropout}, {c.dtype}")
    toks = " ".join(repr(t)[1:-1] if len(t) == 1 else t for t in m.vocab.tokens[:20])
    out.print(f"vocabulary {len(m.vocab):,} tokens: {toks} …")
    if m.labels is not None:
        out.print(Text(f"{c.task} model, {len(m.labels)} labels: {' '.join(m.labels)}"))
    out.print(f"parameters {m.n_params():,}: "
              + ", ".join(f"{k} {v:,}" for k, v in layers.items()))
    if m.features is not None:   # a tagger's character words and embedded LMs
        f = m.features
        out.print(f"words also read by: "
                  + ", ".join(([f"a character BRNN {c.char_hidden}×2 ({len(f.chars)} "
                                f"characters, C.*)"] if f.chars is not None else [])
                              + [f"{'backward' if rev else 'forward'} char LM "
                                 f"{lm.config.layers}×{lm.config.cell.upper()} "
                                 f"{lm.config.hidden} (frozen, embedded)"
                                 for lm, rev in f.lms]))
    if run:
        bv = run.get("best_valid")
        out.print(f"trained {run.get('step', 0):,} steps, {run.get('epoch', 0)} full epochs, "
                  f"{run.get('tokens_seen', 0):,} tokens, "
                  f"{format_duration(run.get('elapsed', 0.0))}"
                  + (f"; best validation {bv:.4f} "
                     f"{'nats/token' if metric == 'valid_loss' else metric[6:]} at step "
                     f"{run.get('best_step')}" if bv is not None else ""))
        tl = [h.get("train_loss") for h in hist if h.get("train_loss") is not None]
        vl = [h.get("valid_loss") for h in hist if h.get("valid_loss") is not None]
        if tl:
            out.print(f"train loss {tl[0]:.3f} {sparkline(tl)} {tl[-1]:.3f}")
        if vl:
            out.print(f"valid loss {vl[0]:.3f} {sparkline(vl)} {vl[-1]:.3f}")
    else:
        out.print("no training state in this file")


def _plot(hist: list, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CharlmError("--plot needs matplotlib, which is not installed. Install it with "
                          "`pip install 'charlm[plot]'` (or `pip install matplotlib`).")
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("train_loss", "train"), ("valid_loss", "validation")):
        pts = [(h["step"], h[key]) for h in hist if h.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    err.print(f"Wrote {path}")
