"""``charlm sample``, ``score`` and ``eval``: using a trained model."""

from __future__ import annotations

import io
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

from ..errors import CharlmError, ConfigError, CorpusError
from ..nn.sampling import check_options
from ..nn.sampling import sample as draw
from ..text.labelled import parse_class_option
from ..text.vocab import EOS_ID, UNK_ID
from ..training.runs import check_task_options
from ..use.classifier import Classifier
from ..use.language_model import LanguageModel
from ..use.score import score_many
from ..use.tagger import Tagger
from .classify_cmds import eval_classifier, read_eval_examples
from .common import (
    LEVEL_HELP,
    MODEL_HELP,
    MODEL_NAME,
    TASK_HELP,
    Base,
    LabelColumn,
    Level,
    Task,
    app,
    arg_text,
    emit_json,
    err,
    guarded,
    live_progress,
    open_model,
    out,
    read_input,
    read_path,
    text_lines,
)
from .render import format_prob, plural
from .tag_cmds import eval_tagger


# ----------------------------------------------------------------------- sample
@app.command()
@guarded
def sample(
    level: Level = typer.Option("char", "--level", help=LEVEL_HELP),
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
    prime: Optional[str] = typer.Option(None, "--prime", metavar="<text>",
                                        help="Text the sample continues."),
    allow_unk: bool = typer.Option(False, "--allow-unk", help="Let <UNK> be drawn."),
    no_stop: bool = typer.Option(False, "--no-stop",
                                 help="Go on through <EOS> (as a line break) to --length; "
                                      "samples are then separated by a blank line."),
    min_length: int = typer.Option(0, "--min-length",
                                   help="No <EOS> before this many tokens (it is not drawn)."),
    out_file: Optional[Path] = typer.Option(None, "--out",
                                            help="Write the samples to this new file instead "
                                                 "of stdout."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per sample."),
):
    """Sample new text: draw each token from the softmax and feed it back.

    Without --seed a seed is drawn from the operating system's entropy; --json reports it,
    so `--seed` with that number draws the same sample again.
    """

    m, meta, path = open_model(level, model, starter=True)
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
    if out_file is not None and out_file.exists():
        raise CharlmError(f"{out_file} already exists; --out writes a new file. Choose "
                          "another name, or remove it first.")
    if seed is None:   # drawn here, so that it can be reported and the sample repeated
        import secrets
        seed = secrets.randbits(32)
    rng = np.random.default_rng(seed)
    sink = sys.stdout if out_file is None else io.StringIO()
    for i in range(num):
        prefix = prime or ""
        stream = None if as_json else TextStream(vocab, prime, sink)
        if not as_json:
            sink.write(("\n" if i and no_stop else "") + prefix)
        s = draw(m, rng, length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                 prime_ids=prime_ids, allow_unk=allow_unk, stop_at_eos=not no_stop,
                 min_length=min_length, on_token=stream)
        if as_json:
            emit_json({"index": i, "text": vocab.continue_text(prime, s.ids), "prime": prime,
                       "tokens": [vocab.tokens[t] for t in s.ids], "n_tokens": len(s.ids),
                       "log_prob": s.log_prob, "stopped_at_eos": s.stopped_at_eos,
                       "seed": seed}, sink)
        else:
            stream.close()
            sink.write("\n")
        sink.flush()
    if out_file is not None:
        write_new_file(out_file, sink.getvalue())
        err.print(f"Wrote {num} sample{'s' if num != 1 else ''} to {out_file}.")


def write_new_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file, then a rename that
    refuses to replace a file made meanwhile)."""
    import os
    import tempfile
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.link(tmp, path)     # fails if path exists: nothing of the user's is replaced
    finally:
        os.unlink(tmp)


class TextStream:
    """Writes each sampled token to stdout as it arrives, joined onto the prime (if any) and
    the tokens before it as ``Vocab.continue_text`` joins them."""

    def __init__(self, vocab, prime: str | None = None, sink=None):
        self.vocab = vocab
        self.joiner = vocab.joiner(prime)
        self.sink = sink or sys.stdout

    def __call__(self, tok: int) -> None:
        t = self.vocab.tokens[tok]
        if self.joiner is None:
            piece = "\n" if tok == EOS_ID else t
        else:
            piece = self.joiner.add(t)
        self.sink.write(piece)
        self.sink.flush()

    def close(self) -> None:
        """Write what the joiner still holds back (a quote whose role the end decides)."""
        if self.joiner is not None:
            self.sink.write(self.joiner.flush())


# ------------------------------------------------------------------------ score
@app.command()
@guarded
def score(
    sentences: Optional[List[str]] = typer.Argument(
        None, help="Sentences to score (none: read standard input, one per line)."),
    file: Optional[Path] = typer.Option(None, "--file",
                                        help="Score each line of a file ('-' = stdin)."),
    encoding: str = typer.Option("utf-8", "--encoding", metavar="<codec>",
                                 help="Text encoding of --file."),
    level: Level = typer.Option("char", "--level", help=LEVEL_HELP),
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    base: Base = typer.Option("e", "--base", help="Logarithm base: e, 2 or 10."),
    rank: Optional[bool] = typer.Option(
        None, "--rank/--lines",
        help="A table ranked by probability, or one line per input line in input order "
             "[default: --rank for sentences given as arguments, --lines for a file or "
             "stdin]."),
    unk_penalty: bool = typer.Option(
        False, "--unk-penalty",
        help="Subtract log(number of types <UNK> stands for) per <UNK>: fair ranking."),
    per_token: bool = typer.Option(False, "--per-token",
                                   help="Show every P(y<t> | ...) and its surprisal."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per sentence."),
):
    """How probable is a sentence? P(y<1>) · P(y<2>|y<1>) · … · P(<EOS>|…).

    --lines prints, for each input line in order, tab-separated: log P (in --base), tokens
    (with <EOS>), OOV tokens, perplexity per token, and the line. A blank line is an empty
    sequence: it scores P(<EOS>) alone, 1 token.
    """

    texts, source, raw = read_input(sentences, file, encoding, "sentence")
    from_file = source is not None
    if raw is not None:
        texts += text_lines(raw)
    if not texts:
        raise ConfigError("Nothing to score. Give a sentence, --file FILE, or text on "
                          "standard input.")
    logb = {"e": 1.0, "2": math.log(2), "10": math.log(10)}[base]
    m, meta, _ = open_model(level, model, starter=True)
    penalty = unk_penalty_nats(m.vocab) if unk_penalty else 0.0
    reverse = bool((meta.get("config") or {}).get("reverse"))
    results = list(score_many(m, [t[::-1] for t in texts] if reverse else texts))
    for r, t in zip(results, texts if reverse else []):
        r.text = t   # a backward LM (--reverse) scored the sentence read from its end
    warn_unknown(m.vocab, results, penalty if unk_penalty else None)
    if rank is None:
        rank = not from_file

    def log_p(r) -> float:  # natural log, with the <UNK> penalty when asked for
        return r.log_prob - r.n_oov * penalty

    def ppl(r) -> float:
        return math.exp(min(-log_p(r) / r.n_tokens, 700))

    if as_json:
        for k, r in enumerate(results):
            obj = {"index": k, "text": r.text, "log_prob": log_p(r) / logb, "base": base,
                   "probability": math.exp(log_p(r)), "perplexity": ppl(r),
                   "n_tokens": r.n_tokens, "n_oov": r.n_oov,
                   "unk_penalty": r.n_oov * penalty / logb}
            if per_token:
                obj["tokens"] = [{"token": m.vocab.tokens[i], "log_prob": float(lp) / logb,
                                  "surprisal_bits": float(-lp / math.log(2))}
                                 for i, lp in zip(r.ids, r.log_probs)]
            emit_json(obj)
        return
    lname = {"e": "ln", "2": "log2", "10": "log10"}[base]
    if not rank:
        for r in results:   # tab-separated, one line per input line (see the help)
            sys.stdout.write(f"{log_p(r) / logb:.4f}\t{r.n_tokens}\t{r.n_oov}\t"
                             f"{ppl(r):.3f}\t{r.text}\n")
        sys.stdout.flush()
    elif len(results) == 1:
        r = results[0]
        out.print(Text(f"P({r.text}) = {format_prob(log_p(r))}"))  # Text: no markup
        out.print(f"{lname} P = {log_p(r) / logb:.4f}   perplexity {ppl(r):.3f} per "
                  f"token   {r.n_tokens} tokens (with <EOS>)   {r.n_oov} OOV")
    else:
        ranked = sorted(results, key=lambda r: -log_p(r))
        best = log_p(ranked[0])
        any_unk = any(r.n_oov for r in results)
        table = Table(show_edge=False, pad_edge=False)
        for col, j in (("#", "right"), ("sentence", "left"), ("P", "right"),
                       (f"{lname} P", "right"), ("ppl/token", "right"), ("tokens", "right"),
                       ("OOV", "right"), ("× best", "right")) + ((("", "left"),) if any_unk
                                                                  else ()):
            table.add_column(col, justify=j)
        for k, r in enumerate(ranked, 1):
            note = ((f"has <UNK> (−{r.n_oov * penalty / logb:.3f})" if unk_penalty
                     else "has <UNK>") if r.n_oov else "",) if any_unk else ()
            table.add_row(str(k), Text(r.text), format_prob(log_p(r)),
                          f"{log_p(r) / logb:.3f}", f"{ppl(r):.3f}", str(r.n_tokens),
                          str(r.n_oov), format_prob(log_p(r) - best), *note)
        out.print(table)
    if per_token:
        for r in results:
            _per_token(m, r)


def unk_penalty_nats(vocab) -> float:
    """log(number of token types <UNK> stood for in the training text), at least log 1."""
    n = vocab.unk_types
    if not isinstance(n, int):
        raise CharlmError("This model file does not record how many token types <UNK> stands "
                          "for (it was made before charlm recorded that). Rank without "
                          "--unk-penalty, or train the model again.")
    return math.log(max(n, 1))


def warn_unknown(vocab, results, penalty: float | None) -> None:
    """One summary on stderr for blank lines, for lines made only of unknown tokens and for
    the unknown tokens of all the others (not one warning per line)."""
    blank = sum(1 for r in results if r.n_tokens == 1)   # nothing but the final <EOS>
    if blank:
        err.print(f"Warning: {plural(blank, 'empty sentence')} (no tokens) "
                  f"{'scores' if blank == 1 else 'score'} only the <EOS> that ends "
                  f"{'it' if blank == 1 else 'them'}.")
    with_unk = [r for r in results if r.n_oov]
    if not with_unk:
        return
    all_unk = [r for r in with_unk if r.n_oov == r.n_tokens - 1]
    seen: dict[str, None] = {}
    for r in with_unk:
        seen.update(dict.fromkeys(vocab.oov_tokens(r.text)))
    shown = " ".join(repr(t) for t in list(seen)[:10]) + (" …" if len(seen) > 10 else "")
    how = ("scored as <UNK>, less log " + str(vocab.unk_types) + " each (--unk-penalty)"
           if penalty is not None else "scored as <UNK> (rank fairly with --unk-penalty)")
    what = (f"every token of {all_unk[0].text!r} is" if len(with_unk) == 1 and all_unk
            else f"{plural(len(with_unk), 'sentence')} of {len(results)} "
                 f"{'has' if len(with_unk) == 1 else 'have'} tokens")
    err.print(f"Warning: {what} outside the vocabulary, {how}: {shown}")


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
# The options of `charlm eval` that apply to some models only (the others apply to all).
EVAL_OPTIONS = {"per_line": ("lm",), "level": ("lm",), "label_column": ("classify",),
                "classes": ("classify",)}


@app.command("eval")
@guarded
def eval_cmd(
    ctx: typer.Context,
    file: Optional[Path] = typer.Argument(
        None, help="A held-out file ('-' = stdin): text, one sequence per line (a language "
                   "model); CoNLL (a tagger); labelled lines (a classifier)."),
    task: Optional[Task] = typer.Option(None, "--task", help=TASK_HELP),
    level: Level = typer.Option("char", "--level", help=LEVEL_HELP),
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the files."),
    per_line: bool = typer.Option(False, "--per-line",
                                  help="Language model: score every line on its own from a "
                                       "zero state (higher than the default, which carries "
                                       "the state across lines as training's validation)."),
    batch: Optional[int] = typer.Option(
        None, "--batch", help="Lines (with --per-line), sentences or texts run in parallel "
                              "[default: 64]."),
    label_column: LabelColumn = typer.Option("auto", "--label-column",
                                             help="Classifier: the column of FILE with the "
                                                  "labels: auto, first or last."),
    classes: Optional[List[str]] = typer.Option(
        None, "--class", metavar="LABEL=FILE",
        help="Classifier: a file of one class's texts, as train takes (repeat per class)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
):
    """How good a model is on held-out data. A language model: perplexity and bits per
    character, computed as training's validation computes them (the model's own text options,
    state carried across lines). A tagger: token accuracy and entity precision, recall and F1
    (overall and per type). A classifier: accuracy, macro-F1, per-class precision/recall/F1
    and the confusion matrix. Ratios are printed as percentages, losses in nats."""

    if batch is not None and batch < 1:
        raise ConfigError(f"--batch must be at least 1 (got {batch}).")
    if file is None and not classes:
        raise ConfigError("Give a FILE to evaluate ('-' = standard input), or --class "
                          "LABEL=FILE per class for a classifier.")
    m, meta, path = open_model(level, model, tasks=("lm", "tag", "classify"), task=task,
                              starter=True)
    kind = m.config.task
    given = {k for k in ctx.params
             if getattr(ctx.get_parameter_source(k), "name", "") != "DEFAULT"}
    check_task_options(kind, given - ({"level"} if model is not None else set()),
                       EVAL_OPTIONS, f"{path}, a {MODEL_NAME[kind]}")
    if kind == "lm" and batch is not None and not per_line:
        raise ConfigError("--batch sets how many lines --per-line scores at once; without "
                          "--per-line the model's own --eval-batch rows are used. Add "
                          "--per-line, or drop --batch.")
    batch = batch or 64
    name = "standard input" if str(file) == "-" else str(file)
    text = read_path(file, encoding, "the file to evaluate") if file is not None else None
    if kind == "tag":   # a CoNLL file: accuracy and entity P/R/F1
        return eval_tagger(Tagger(m, meta), text, name, path, batch, as_json)
    if kind == "classify":
        clf = Classifier(m, meta)
        examples = read_eval_examples(clf, text, name, path, classes or [], label_column,
                                      encoding)
        specs = dict(parse_class_option(c) for c in classes or [])
        return eval_classifier(clf, examples, name if file is not None else
                               ", ".join(specs.values()), path, batch, as_json, specs)
    if not text.strip():
        raise CorpusError(f"{name} has no text to evaluate. Give a non-empty file.")
    lm = LanguageModel(m, meta)
    with tqdm(total=None, unit="tok" if not per_line else "line", file=sys.stderr,
              disable=len(text) < 200_000 or not live_progress(), leave=False) as bar:
        res = {"task": "lm", "file": name, "model": str(path),
               **lm.evaluate(text, per_line, batch, on_progress=bar.update)}
    if as_json:
        emit_json(res)
        return
    n_tok, n_oov, mean = res["tokens"], res["oov"], res["nll"]
    out.print(f"{escape(name)}: {res['sequences']:,} sequences, {n_tok:,} tokens (with "
              f"<EOS>), {n_oov:,} OOV" + ("; each line scored on its own" if per_line else ""))
    out.print(f"mean NLL {mean:.4f} nats/token   perplexity {res['perplexity']:.3f}"
              + (f"   (without OOV positions {res['perplexity_without_oov']:.3f})"
                 if res["perplexity_without_oov"] is not None and n_oov else ""))
    out.print(f"bits per character {res['bits_per_char']:.4f}")
