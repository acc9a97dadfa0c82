"""``charlm classify`` and the classifier's side of ``charlm eval`` and ``charlm train``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ..errors import ConfigError
from ..text.files import read_text
from ..use.classifier import Classifier
from .common import (
    app,
    arg_text,
    emit_json,
    guarded,
    open_model,
    out,
    read_stdin,
)

DEFAULT_MODEL = Path("models") / "classify.npz"


def open_classifier(model: Optional[Path]):
    """The classifier in ``model`` (default models/classify.npz), or a clear error."""
    m, meta, _ = open_model("word", model, tasks=("classify",))
    return Classifier(m, meta)


@app.command()
@guarded
def classify(
    texts: Optional[List[str]] = typer.Argument(None, help="Texts to classify ('-' = stdin)."),
    file: Optional[Path] = typer.Option(None, "--file",
                                        help="Classify each line of a file ('-' = stdin)."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of --file."),
    model: Optional[Path] = typer.Option(None, "--model",
                                         help="A classifier [default: models/classify.npz]."),
    show_all: bool = typer.Option(False, "--all", help="Show every class's probability."),
    batch: int = typer.Option(64, "--batch", help="Texts classified in parallel."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per text."),
):
    """The class of a text (many-to-one): its label and probability.

    One output line per input text, in order; with --file, one per line of the file (an empty
    line gives an empty output line, or "label": null with --json).
    """
    lines = [arg_text(t, "text") for t in texts or []]
    if file is not None:
        raw = read_stdin(encoding) if str(file) == "-" else read_text(file, encoding)
        lines += _file_lines(raw)
    elif lines == ["-"]:
        lines = _file_lines(read_stdin(encoding))
    if not lines:
        raise ConfigError("Nothing to classify. Give a text, or --file FILE.")
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1 (got {batch}).")
    clf = open_classifier(model)
    real = [i for i, t in enumerate(lines) if t.strip()]
    preds = dict(zip(real, clf.classify_many([lines[i] for i in real], batch)))
    for i, text in enumerate(lines):
        p = preds.get(i)
        if as_json:
            _emit_line_json(p.to_json() if p is not None else
                            {"text": text, "label": None, "probability": None,
                             "probabilities": {}})
        elif p is None:
            sys.stdout.write("\n")
        else:
            rest = "".join(f"\t{lab}={q:.4f}" for lab, q in p.probabilities.items()
                           if lab != p.label) if show_all else ""
            sys.stdout.write(f"{p.label}\t{p.probability:.4f}{rest}\n")
    sys.stdout.flush()


# Characters that str.splitlines() and many readers take for line ends: escaped in JSON
# output (where they can only sit inside strings) so that one object stays one line.
# (json.dumps escapes the control characters among them already.)
_LINE_ENDS = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"})


def _emit_line_json(obj) -> None:
    line = json.dumps(obj, ensure_ascii=False)
    sys.stdout.write(line.translate(_LINE_ENDS) + "\n")


def _file_lines(raw: str) -> list[str]:
    """A file's lines, split on "\\n" only (U+0085 and the like stay inside a line)."""
    lines = raw.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def eval_classifier(m, meta, file: Path, encoding: str, label_column: str,
                    as_json: bool) -> None:
    """``charlm eval FILE --model CLASSIFIER``: accuracy, macro-F1, per-class precision,
    recall and F1, and the confusion matrix."""
    r = Classifier(m, meta).evaluate(file, label_column=label_column, encoding=encoding)
    if as_json:
        emit_json({"file": str(file), **r})
        return
    out.print(f"{file}: {r['examples']:,} examples, {len(r['classes'])} classes")
    out.print(f"accuracy {r['accuracy']:.4f}   macro-F1 {r['macro_f1']:.4f}")
    t = Table(title=None, show_edge=False, pad_edge=False)
    for name in ("class", "precision", "recall", "F1", "support"):
        t.add_column(name, justify="left" if name == "class" else "right")
    for c, v in r["per_class"].items():
        t.add_row(c, f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}",
                  f"{v['support']:,}")
    out.print(t)
    out.print("confusion matrix (rows: gold, columns: predicted)")
    cm = Table(show_edge=False, pad_edge=False)
    cm.add_column("gold \\ predicted")
    for c in r["classes"]:
        cm.add_column(c, justify="right")
    for c, row in zip(r["classes"], r["confusion"]):
        cm.add_row(c, *(f"{n:,}" for n in row))
    out.print(cm)
