"""``charlm classify`` and the classifier's side of ``charlm eval``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Literal, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import ConfigError, CorpusError
from ..tasks.classify import label_ids
from ..text import conll
from ..text.labelled import (
    Examples,
    input_label_side,
    parse_class_file,
    parse_class_option,
    parse_labelled,
    split_label,
)
from ..use.classifier import Classifier
from .common import (
    app,
    emit_json,
    err,
    guarded,
    json_ratios,
    open_model,
    out,
    read_input,
    read_path,
    text_lines,
)
from .render import percent, plural

DEFAULT_MODEL = Path("models") / "classify.npz"
InputLabelColumn = Literal["auto", "first", "last", "none"]
SIDE_NAME = {"first": "first column", "last": "last column", "fasttext": "__label__ prefixes"}


def open_classifier(model: Optional[Path]):
    """The classifier in ``model`` (default models/classify.npz), or a clear error."""
    m, meta, path = open_model("word", model, tasks=("classify",))
    return Classifier(m, meta), path


@app.command()
@guarded
def classify(
    texts: Optional[List[str]] = typer.Argument(
        None, help="Texts to classify (none, or '-': standard input when it is piped)."),
    file: Optional[Path] = typer.Option(None, "--file",
                                        help="Classify each line of a file ('-' = stdin)."),
    label_column: InputLabelColumn = typer.Option(
        "auto", "--label-column", show_default=False,
        help="A labelled file's label column, set aside: first, last, or none (each whole "
             "line is a text) [default: auto, found by the model's classes]."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of --file."),
    model: Optional[Path] = typer.Option(None, "--model",
                                         help="A classifier [default: models/classify.npz]."),
    show_all: bool = typer.Option(False, "--all", help="Show every class's probability."),
    batch: int = typer.Option(64, "--batch", help="Texts classified in parallel."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per text."),
):
    """The class of a text (many-to-one): its label and probability, tab-separated.

    One output line per input text, in order; with --file, one per line of the file (an empty
    line gives an empty output line, or "label": null with --json). A labelled file (a
    class's label in a tab-separated column, or __label__X) has its labels set aside: the
    text alone is classified, the label is "gold" in the JSON, and stderr says how many
    predictions match them.
    """
    lines, source, raw = read_input(texts, file, encoding, "text")
    file_lines = text_lines(raw) if raw is not None else []
    if not lines and not file_lines:
        raise ConfigError("Nothing to classify. Give a text, --file FILE, or text on standard "
                          "input.")
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1 (got {batch}).")
    if label_column != "auto" and raw is None:
        raise ConfigError("--label-column applies to a file or standard input, not to texts "
                          "given as arguments. Drop it.")
    clf, path = open_classifier(model)
    name = "standard input" if source == "-" else source
    side = input_label_side(file_lines, clf.labels, label_column, name) if raw else None
    pairs = [(t, None) for t in lines] + [split_label(t, side) for t in file_lines]
    if side is None and label_column == "auto" and file_lines and \
            all("\t" in t for t in file_lines if t.strip()):
        err.print(f"Warning: every line of {name} has a tab, but neither column holds only "
                  f"the model's classes ({', '.join(clf.labels)}): each whole line is "
                  "classified. Give --label-column first or last to set a label column "
                  "aside.")
    real = [i for i, (t, _) in enumerate(pairs) if t.strip()]
    preds = dict(zip(real, clf.classify_many([pairs[i][0] for i in real], batch)))
    for i, (text, gold) in enumerate(pairs):
        p = preds.get(i)
        if as_json:
            obj = p.to_json() if p is not None else {"text": text, "label": None,
                                                     "probability": None, "distribution": {}}
            _emit_line_json({**obj, **({"gold": gold} if side is not None else {})})
        elif p is None:
            sys.stdout.write("\n")
        else:
            rest = "".join(f"\t{lab}={q:.4f}" for lab, q in p.distribution.items()
                           if lab != p.label) if show_all else ""
            sys.stdout.write(f"{p.label}\t{p.probability:.4f}{rest}\n")
    sys.stdout.flush()
    if side is not None:
        scored = [i for i in real if pairs[i][1] is not None]
        agree = sum(preds[i].label == pairs[i][1] for i in scored)
        which = "" if model is None else f" --model {path}"
        err.print(f"{name}: the labels ({SIDE_NAME[side]}) were set aside and the text alone "
                  f"classified; {agree:,} of {plural(len(scored), 'prediction')} match them "
                  f"(accuracy {percent(agree / len(scored) if scored else None)}). The full "
                  f"report: charlm eval {source}{which or ' --task classify'}"
                  + (" < FILE" if source == "-" else ""))


# Characters that str.splitlines() and many readers take for line ends: escaped in JSON
# output (where they can only sit inside strings) so that one object stays one line.
# (json.dumps escapes the control characters among them already.)
_LINE_ENDS = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"})


def _emit_line_json(obj) -> None:
    line = json.dumps(obj, ensure_ascii=False)
    sys.stdout.write(line.translate(_LINE_ENDS) + "\n")


def read_eval_examples(clf: Classifier, text: Optional[str], name: str, path: Path,
                       classes: list[str], label_column: str, encoding: str) -> Examples:
    """The labelled examples ``charlm eval`` scores a classifier on: a labelled file's (any
    format :mod:`charlm.text.labelled` reads) and each --class LABEL=FILE's lines."""
    examples = Examples()
    if text is not None:
        try:
            found = parse_labelled(text, name, label_column, clf.labels)
            label_ids(found.labels, clf.labels, found.where)   # labels the model knows
            examples.extend(found)
        except CorpusError as e:
            if not conll.looks_like_conll(text):
                raise
            raise CorpusError(f"{name} looks like a CoNLL file (one token and its label per "
                              f"line), and {path} is a classifier, which reads one labelled "
                              "text per line. Evaluate a tagger on it: --task tag, or --model "
                              "TAGGER.") from e
    for spec in classes:
        label, p = parse_class_option(spec)
        examples.extend(parse_class_file(read_path(Path(p), encoding, f"--class {label}"), p,
                                         label))
    return examples


def eval_classifier(clf: Classifier, examples: Examples, name: str, path: Path, batch: int,
                    as_json: bool, class_files: dict | None = None) -> None:
    """``charlm eval FILE --task classify``: accuracy, macro-F1, mean NLL, per-class
    precision, recall and F1, and the confusion matrix."""
    r = clf.evaluate(examples, batch=batch)
    if as_json:
        emit = {"task": "classify", "file": name, "model": str(path), **json_ratios(r)}
        if class_files:
            emit["class_files"] = class_files
        emit_json(emit)
        return
    out.print(f"{escape(name)}: {r['examples']:,} examples, {len(r['classes'])} classes")
    out.print(f"accuracy {percent(r['accuracy'])}   macro-F1 {percent(r['macro_f1'])}   "
              f"mean NLL {r['nll']:.4f} nats/example")
    t = Table(title=None, show_edge=False, pad_edge=False)
    for col in ("class", "precision %", "recall %", "F1 %", "gold", "predicted", "correct"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for c, v in r["per_class"].items():
        t.add_row(escape(c), *(f"{100 * v[k]:.2f}" for k in ("precision", "recall", "f1")),
                  f"{v['gold']:,}", f"{v['predicted']:,}", f"{v['correct']:,}")
    out.print(t)
    out.print("confusion matrix (rows: gold, columns: predicted)")
    cm = Table(show_edge=False, pad_edge=False)
    cm.add_column("gold \\ predicted")
    for c in r["classes"]:
        cm.add_column(escape(c), justify="right")
    for c, row in zip(r["classes"], r["confusion"]):
        cm.add_row(escape(c), *(f"{n:,}" for n in row))
    out.print(cm)
