"""``charlm tag`` (and ``charlm eval`` on a tagger): using a trained tagging model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..errors import ConfigError, CorpusError
from ..text import conll
from ..use.tagger import Tagger
from .common import (
    app,
    emit_json,
    guarded,
    json_ratios,
    open_model,
    out,
    read_input,
    text_lines,
)
from .render import percent

COLOURS = ["bold cyan", "bold magenta", "bold green", "bold yellow", "bold blue", "bold red"]


def open_tagger(model: Optional[Path]):
    """The tagger in ``model`` (default models/tag.npz), or a clear error."""
    m, meta, _ = open_model("word", model, tasks=("tag",))
    return Tagger(m, meta)


@app.command()
@guarded
def tag(
    sentences: Optional[List[str]] = typer.Argument(
        None, help="Sentences to tag (none, or '-': standard input when it is piped)."),
    file: Optional[Path] = typer.Option(None, "--file",
                                        help="Tag each line of a file, or a CoNLL file's "
                                             "sentences ('-' = stdin)."),
    conll_input: Optional[bool] = typer.Option(
        None, "--conll/--lines",
        help="Read the file (or stdin) as CoNLL, one token per line, and print CoNLL columns "
             "back; or as one sentence per line [default: CoNLL when every line ends in one "
             "of the model's labels]."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of --file."),
    model: Optional[Path] = typer.Option(None, "--model",
                                         help="A tagging model file [default: "
                                              "models/tag.npz]."),
    whitespace: bool = typer.Option(False, "--whitespace",
                                    help="Split sentences on whitespace only (default: words, "
                                         "@mentions, #tags, URLs and punctuation)."),
    as_json: bool = typer.Option(False, "--json",
                                 help="One JSON object per sentence: tokens, labels, "
                                      "probabilities, distribution, entities."),
):
    """Tag each token of a sentence (a BRNN tagger): the sentence with its entities marked,
    then each entity with its tokens (0-based, end exclusive, as in the JSON) and the lowest
    probability of its tokens' labels.

    A CoNLL file comes back as CoNLL: token, gold label (when the file has one) and the
    predicted label, tab-separated, a blank line between sentences.
    """
    texts, source, raw = read_input(sentences, file, encoding, "sentence")
    if not texts and not (raw or "").strip():
        raise ConfigError("Nothing to tag. Give a sentence, --file FILE, or text on "
                          "standard input.")
    tagger = open_tagger(model)
    if raw is not None and (conll_input if conll_input is not None
                            else conll.has_labels_of(raw, tagger.labels)):
        if texts:
            raise ConfigError("Give sentences or a CoNLL file, not both: a CoNLL file is "
                              "tagged as CoNLL columns.")
        if whitespace:
            raise ConfigError("--whitespace does not apply to a CoNLL file (its tokens are "
                              "given, one per line). Drop it.")
        return _tag_conll(tagger, raw, source, as_json)
    if raw is not None:
        texts += text_lines(raw)
    results = tagger.tag_many(texts, whitespace)
    if as_json:
        for text, r in zip(texts, results):
            emit_json({"text": text, **r.to_json(tagger.labels)})
        return
    for text, r in zip(texts, results):
        out.print(_marked(r, tagger.iob))
        if tagger.iob:
            if r.entities:
                for e in r.entities:
                    out.print(Text(f"  {e.type:<8} {e.text}   (tokens {e.start}:{e.end}, "
                                   f"lowest label probability "
                                   f"{r.entity_probability(e):.2f})"))
            else:
                out.print("  (no entities)")


def _tag_conll(tagger: Tagger, raw: str, source: str, as_json: bool) -> None:
    """A CoNLL file's sentences tagged, written back as CoNLL columns (or JSON)."""
    tokens, gold = conll.parse_tokens(raw, source)
    if not tokens:
        raise CorpusError(f"{source} has no tokens to tag. Give a CoNLL file: one token per "
                          "line, a blank line between sentences.")
    results = tagger.tag_token_lists(tokens)
    for k, (toks, r) in enumerate(zip(tokens, results)):
        if as_json:
            emit_json({"text": " ".join(toks), **r.to_json(tagger.labels),
                       **({"gold": gold[k]} if gold is not None else {})})
            continue
        rows = (zip(toks, gold[k], r.labels) if gold is not None else zip(toks, r.labels))
        sys.stdout.write("".join("\t".join(row) + "\n" for row in rows) + "\n")
    sys.stdout.flush()


def _marked(r, iob: bool) -> Text:
    """The sentence with each entity in brackets and its type, coloured on a terminal."""
    line = Text()
    if not iob:   # plain labels: token/LABEL for every token that is not the first label
        for k, (tok, lab) in enumerate(zip(r.tokens, r.labels)):
            line.append(("" if k == 0 else " ") + tok)
            line.append(f"/{lab}", style="bold cyan")
        return line
    starts = {e.start: e for e in r.entities}
    types = sorted({e.type for e in r.entities})
    k = 0
    while k < len(r.tokens):
        if k:
            line.append(" ")
        if k in starts:
            e = starts[k]
            style = COLOURS[types.index(e.type) % len(COLOURS)]
            line.append("[" + " ".join(r.tokens[k:e.end]) + "]", style=style)
            line.append(e.type, style=style.replace("bold ", ""))
            k = e.end
        else:
            line.append(r.tokens[k])
            k += 1
    return line


def eval_tagger(tagger: Tagger, text: str, name: str, path: Path, batch: int,
                as_json: bool) -> None:
    """``charlm eval`` on a tagger: token accuracy, entity P/R/F1 overall and per type."""
    try:
        data = conll.parse(text, name)
        if not len(data):
            raise CorpusError(f"{name} holds no tagged sentences. Give a CoNLL file: one "
                              "`TOKEN LABEL` per line, a blank line between sentences.")
        s = tagger.evaluate(data, batch)
    except CorpusError as e:
        if conll.looks_like_conll(text):
            raise
        raise CorpusError(f"{name} does not look like a CoNLL file (one `TOKEN LABEL` per "
                          f"line, a blank line between sentences), and {path} is a tagger, "
                          "which is evaluated on one. Labelled lines are for a classifier: "
                          "--task classify, or --model CLASSIFIER.") from e
    if as_json:
        emit_json({"task": "tag", "file": name, "model": str(path), **json_ratios(s)})
        return
    out.print(f"{escape(name)}: {s['sentences']:,} sentences, {s['tokens']:,} tokens")
    out.print(f"token accuracy {percent(s['accuracy'])}   mean NLL {s['nll']:.4f} nats/token")
    if "entities" not in s:
        return
    table = Table(show_edge=False, pad_edge=False)
    for col in ("entity type", "precision %", "recall %", "F1 %", "gold", "predicted",
                "correct"):
        table.add_column(col, justify="left" if col == "entity type" else "right")
    rows = list(s["per_type"].items()) + [("overall (micro)", s["entities"])]
    for name, r in rows:
        table.add_row(name, *(f"{100 * r[k]:.2f}" for k in ("precision", "recall", "f1")),
                      f"{r['gold']:,}", f"{r['predicted']:,}", f"{r['correct']:,}",
                      style="bold" if name.startswith("overall") else None)
    out.print(table)


__all__ = ["eval_tagger", "open_tagger", "tag"]
