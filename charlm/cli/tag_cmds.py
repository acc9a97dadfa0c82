"""``charlm tag`` (and ``charlm eval`` on a tagger): using a trained tagging model."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..errors import ConfigError
from ..text.files import read_text
from ..use.tagger import Tagger
from .common import app, arg_text, emit_json, guarded, open_model, out, read_stdin

COLOURS = ["bold cyan", "bold magenta", "bold green", "bold yellow", "bold blue", "bold red"]


def open_tagger(model: Optional[Path]):
    """The tagger in ``model`` (default models/tag.npz), or a clear error."""
    m, meta, _ = open_model("word", model, tasks=("tag",))
    return Tagger(m, meta)


@app.command()
@guarded
def tag(
    sentences: Optional[List[str]] = typer.Argument(None, help="Sentences to tag."),
    file: Optional[Path] = typer.Option(None, "--file",
                                        help="Tag each line of a file ('-' = stdin)."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of --file."),
    model: Optional[Path] = typer.Option(None, "--model",
                                         help="A tagging model file [default: "
                                              "models/tag.npz]."),
    whitespace: bool = typer.Option(False, "--whitespace",
                                    help="Split tokens on whitespace only (default: words, "
                                         "@mentions, #tags, URLs and punctuation)."),
    as_json: bool = typer.Option(False, "--json",
                                 help="One JSON object per sentence: tokens, labels, "
                                      "probabilities, entities."),
):
    """Tag each token of a sentence (a BRNN tagger): the sentence with its entities marked,
    then the entities found."""
    texts = [arg_text(t, "sentence") for t in sentences or []]
    if file is not None:
        raw = read_stdin(encoding) if str(file) == "-" else read_text(file, encoding)
        texts += raw.split("\n")
        if texts and texts[-1] == "":
            texts.pop()     # the final newline ends the last line
    elif texts == ["-"]:
        texts = read_stdin(encoding).split("\n")
        if texts and texts[-1] == "":
            texts.pop()
    if not texts:
        raise ConfigError("Nothing to tag. Give a sentence, or --file FILE.")
    tagger = open_tagger(model)
    results = tagger.tag_many(texts, whitespace)
    if as_json:
        for text, r in zip(texts, results):
            emit_json({"text": text, **r.to_json(tagger.labels)})
        return
    for text, r in zip(texts, results):
        out.print(_marked(r, tagger.iob))
        if tagger.iob:
            if r.entities:
                for typ, a, b, s in r.entities:
                    p = min(r.probs[a:b])
                    out.print(Text(f"  {typ:<8} {s}   (tokens {a + 1}-{b}, least p {p:.2f})"))
            else:
                out.print("  (no entities)")


def _marked(r, iob: bool) -> Text:
    """The sentence with each entity in brackets and its type, coloured on a terminal."""
    line = Text()
    if not iob:   # plain labels: token/LABEL for every token that is not the first label
        for k, (tok, lab) in enumerate(zip(r.tokens, r.labels)):
            line.append(("" if k == 0 else " ") + tok)
            line.append(f"/{lab}", style="bold cyan")
        return line
    starts = {a: (t, b) for t, a, b, _ in r.entities}
    types = sorted({t for t, _, _, _ in r.entities})
    k = 0
    while k < len(r.tokens):
        if k:
            line.append(" ")
        if k in starts:
            typ, b = starts[k]
            style = COLOURS[types.index(typ) % len(COLOURS)]
            line.append("[" + " ".join(r.tokens[k:b]) + "]", style=style)
            line.append(typ, style=style.replace("bold ", ""))
            k = b
        else:
            line.append(r.tokens[k])
            k += 1
    return line


def eval_tagger(tagger, file: Path, as_json: bool) -> None:
    """``charlm eval`` on a tagger: token accuracy, entity P/R/F1 overall and per type."""
    s = tagger.evaluate(file)
    if as_json:
        emit_json({"file": str(file), **s})
        return
    out.print(f"{escape(str(file))}: {s['sentences']:,} sentences, {s['tokens']:,} tokens")
    out.print(f"token accuracy {s['accuracy']:.4f}   mean NLL {s['loss']:.4f} nats/token")
    if "entities" not in s:
        return
    table = Table(show_edge=False, pad_edge=False)
    for col in ("entity type", "precision", "recall", "F1", "gold", "predicted", "correct"):
        table.add_column(col, justify="left" if col == "entity type" else "right")
    rows = list(s["per_type"].items()) + [("overall (micro)", s["entities"])]
    for name, r in rows:
        table.add_row(name, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}",
                      str(r["gold"]), str(r["predicted"]), str(r["correct"]),
                      style="bold" if name.startswith("overall") else None)
    out.print(table)


__all__ = ["eval_tagger", "open_tagger", "tag"]
