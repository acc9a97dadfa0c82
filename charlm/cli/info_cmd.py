"""``charlm info``: what a model file holds, and where its run stands."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Optional

import typer
from rich.text import Text

from ..errors import ConfigError
from ..tasks.metrics import is_iob
from ..training.runs import resume_command
from .common import (
    LEVEL_HELP,
    MODEL_HELP,
    TASK_HELP,
    Level,
    Task,
    app,
    emit_json,
    err,
    fit_line,
    guarded,
    open_model,
    out,
    pyplot,
)
from .render import format_bytes, format_duration, percent, plural, sparkline

# ------------------------------------------------------------------------- info
# The training options that decide how text becomes tokens (those the file has are shown).
TEXT_KEYS = ("level", "tokenizer", "prose", "lowercase", "normalize", "unk_token",
             "vocab_size", "min_count")


@app.command()
@guarded
def info(
    path_arg: Optional[Path] = typer.Argument(None, metavar="[PATH]",
                                              help="A model file (the same as --model)."),
    task: Optional[Task] = typer.Option(None, "--task", help=TASK_HELP),
    level: Level = typer.Option("char", "--level", help=LEVEL_HELP),
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    plot: Optional[Path] = typer.Option(None, "--plot",
                                        help="Write training/validation curves to a PNG "
                                             "(needs matplotlib)."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
):
    """What a model file holds: config, vocabulary, corpus, text options, training history,
    and whether the run finished or was interrupted (with the command that continues it)."""
    if path_arg is not None and model is not None:
        raise ConfigError(f"Give the model file once: as PATH ({path_arg}) or as --model "
                          f"({model}).")
    m, meta, path = open_model(level, model or path_arg, tasks=("lm", "tag", "classify"),
                               task=task)
    metric = ("valid_loss" if m.labels is None else
              "valid_f1" if m.config.task == "tag" and is_iob(m.labels) else "valid_accuracy")
    run = meta.get("run") or {}
    layers = {}
    for k, v in m.params.items():
        group = k.split(".")[0] if "." in k else ("embedding" if k == "E" else "output")
        layers[group] = layers.get(group, 0) + int(v.size)
    hist = run.get("history") or []
    tcfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    corpus = meta.get("corpus") if isinstance(meta.get("corpus"), dict) else None
    status = ("finished" if run.get("finished") else "interrupted") if run else None
    resume = (resume_command(path, corpus, m.config.task) if status == "interrupted"
              else None)
    res = {"path": str(path), "config": m.config.to_json(), "level": m.vocab.level,
           "vocab_size": len(m.vocab), "vocab_sample": m.vocab.tokens[:20],
           "unk_types": m.vocab.unk_types,
           "parameters": m.n_params(), "parameters_per_layer": layers,
           "train_config": meta.get("config"),
           "text_options": {k: tcfg[k] for k in TEXT_KEYS if k in tcfg},
           "corpus": corpus, "status": status, "resume_command": resume,
           "steps": run.get("step"), "epochs": run.get("epoch"),
           "tokens_seen": run.get("tokens_seen"), "seconds": run.get("elapsed"),
           # the best validation figure, named by best_valid_metric; best_valid_loss only
           # where that figure is a loss (a language model), not an accuracy or F1
           "best_valid": run.get("best_valid"),
           "best_valid_loss": run.get("best_valid") if metric == "valid_loss" else None,
           "best_step": run.get("best_step"),
           "finished": run.get("finished"), "history": hist,
           "task": m.config.task, "labels": m.labels, "best_valid_metric": metric,
           "reverse": bool(tcfg.get("reverse", False)), "source": meta.get("source")}
    if plot is not None:
        _plot(hist, plot)
    if as_json:
        emit_json(res)
        return
    c = m.config
    shape = f"{c.layers}×{'bidirectional ' if c.bidirectional else ''}{c.cell.upper()} {c.hidden}"
    shape += {"rnn": f" ({c.activation})", "gru": " simplified" if c.simplified else "",
              "lstm": " peephole" if c.peephole else ""}[c.cell]
    lines = [str(path),
             f"model       {m.vocab.level}-level {shape}, "
             f"{'embedding ' + str(c.embed) if c.embed else 'one-hot inputs'}"
             f"{' (tied: also the output weights)' if c.tie_weights else ''}, "
             f"dropout {c.dropout}"
             f"{f' (input {c.input_dropout})' if c.input_dropout else ''}, {c.dtype}",
             f"vocabulary  {plural(len(m.vocab), 'token')}: "
             + " ".join(shown_token(t) for t in m.vocab.tokens[:20])
             + (" …" if len(m.vocab) > 20 else ""),
             *([f"task        {c.task}, {plural(len(m.labels), 'label')}: "
                + " ".join(m.labels)] if m.labels is not None else []),
             f"parameters  {m.n_params():,}: "
             + ", ".join(f"{k} {v:,}" for k, v in layers.items())]
    if m.features is not None:   # a tagger's character words and embedded LMs
        f = m.features
        seen = (([f"a character BRNN {c.char_hidden}×2 ({len(f.chars)} characters)"]
                 if f.chars is not None else [])
                + [f"{'backward' if rev else 'forward'} char LM {lm.config.layers}×"
                   f"{lm.config.cell.upper()} {lm.config.hidden} (frozen, embedded)"
                   for lm, rev in f.lms])
        lines += [("words read  " if k == 0 else " " * 12) + x for k, x in enumerate(seen)]
    lines += corpus_lines(corpus, tcfg, c.task) + source_lines(meta.get("source"))
    if tcfg:
        lines += textwrap.wrap(text_options(tcfg, m.vocab, c.task), 80,
                               initial_indent="text" + " " * 8,
                               subsequent_indent=" " * 12, break_on_hyphens=False)
        lines += training_lines(tcfg, c.task)
    if run:
        unit = "example" if c.task == "classify" else "token"
        step = run.get("step", 0)
        lines.append(f"run         {status}: {plural(step, 'step')}, "
                     f"{plural(run.get('epoch', 0), 'full epoch')}, "
                     f"{plural(run.get('tokens_seen', 0), unit)}, "
                     f"{format_duration(run.get('elapsed', 0.0))}")
        bv = run.get("best_valid")
        if bv is not None:
            what = (f"loss {bv:.4f} nats/token" if metric == "valid_loss" else
                    f"{'entity F1' if metric == 'valid_f1' else 'accuracy'} {percent(bv)}")
            lines.append(f"best        validation {what} at step "
                         f"{run.get('best_step', 0):,}")
        if resume:
            lines.append(f"continue    {resume}")
        tl = [h.get("train_loss") for h in hist if h.get("train_loss") is not None]
        vl = [h.get("valid_loss") for h in hist if h.get("valid_loss") is not None]
        if tl:
            lines.append(f"train loss  {tl[0]:.3f} {sparkline(tl, 50)} {tl[-1]:.3f}")
        if vl:
            lines.append(f"valid loss  {vl[0]:.3f} {sparkline(vl, 50)} {vl[-1]:.3f}")
    else:
        lines.append("run         no training state in this file")
    for k, line in enumerate(lines):   # the path and the command are shown whole
        whole = k == 0 or line.startswith(("continue", "started"))
        out.print(Text(line if whole else fit_line(line, sys.stdout)),
                  style="bold" if k == 0 else None)


def training_lines(tcfg: dict, task: str) -> list[str]:
    """The run's optimizer settings, and the model files it started from (--init-from)."""
    if "lr" not in tcfg:
        return []
    line = (f"training    {tcfg.get('optimizer', 'adam')}, lr {tcfg['lr']:g}, batch "
            f"{tcfg.get('batch')}" + (f", bptt {tcfg.get('bptt')}" if task == "lm" else "")
            + f", validation every {tcfg.get('eval_every')} steps")
    start = tcfg.get("init_from")
    return [line] + ([f"started     from {start.replace(',', ' and ')}"] if start else [])


def shown_token(t: str) -> str:
    """A vocabulary entry as a reader can see it: ␣ for the space, escapes for other
    invisible characters (a tab as \\t)."""
    if t == " ":
        return "␣"
    if len(t) == 1 and not t.isprintable():
        return repr(t)[1:-1]
    return t


def corpus_lines(corpus: dict | None, tcfg: dict, task: str = "lm") -> list[str]:
    """Where the training text came from and which part became validation."""
    if corpus is None:
        return ["corpus      not recorded (the file is older than that record)"]
    files = [f for f in corpus.get("files") or [] if isinstance(f, dict)]
    lines = [f"corpus      {describe_file(f)}" for f in files] or ["corpus      (none named)"]
    if len(lines) > 1:
        lines[1:] = ["            " + line[12:] for line in lines[1:]]
    valid = corpus.get("valid")
    if isinstance(valid, dict):
        lines.append(f"validation  {describe_file(valid)}")
    elif tcfg.get("valid_fraction") and task == "classify":
        lines.append(f"validation  {tcfg['valid_fraction']:.0%} of each class's examples, "
                     "drawn with the seed")
    elif tcfg.get("valid_fraction") and task == "tag":
        lines.append(f"validation  the last {tcfg['valid_fraction']:.0%} of the sentences")
    elif tcfg.get("valid_fraction"):
        where = (f" of {files[-1].get('path')}" if len(files) > 1 else " of the corpus")
        lines.append(f"validation  the last {tcfg['valid_fraction']:.0%}{where}, cut at a "
                     "line break")
    else:
        lines.append("validation  none")
    return lines


def source_lines(source) -> list[str]:
    """Where a shipped model's text came from, its licence and its recipe (the meta entry
    ``source``, e.g. the starter model's), one wrapped entry per key."""
    if not isinstance(source, dict):
        return []
    lines: list[str] = []
    for key, value in source.items():
        lines += textwrap.wrap(f"{key}: {value}", 80,
                               initial_indent="source" + " " * 6 if not lines else " " * 12,
                               subsequent_indent=" " * 14, break_on_hyphens=False)
    return lines


def describe_file(f: dict) -> str:
    size = f.get("bytes")
    return f"{f.get('path')}" + (f" ({format_bytes(size)})" if isinstance(size, int) else "")


def text_options(tcfg: dict, vocab, task: str = "lm") -> str:
    """How text became tokens, in words (a tagger's and a classifier's: only the options
    they use)."""
    lm = task == "lm"
    parts = [("paragraphs" + (" split into sentences" if tcfg.get("level") == "word"
                              else "") if tcfg.get("prose") else "one sequence per line")
             if lm else "one sentence per CoNLL block" if task == "tag"
             else "one example per line"]
    if tcfg.get("reverse"):
        parts.append("each read backwards, from its end (--reverse)")
    if lm and tcfg.get("tokenizer") and tcfg.get("level") == "word":
        parts.append(f"{tcfg['tokenizer']} tokenizer")
    parts.append("lower-cased" if tcfg.get("lowercase") else "case kept")
    if tcfg.get("normalize"):
        parts.append(f"{tcfg['normalize']}")
    if lm and tcfg.get("unk_token"):
        parts.append(f"{tcfg['unk_token']} read as <UNK>")
    if tcfg.get("level") == "word" or vocab.level == "word":
        n = tcfg.get("min_count", 1)
        often = {1: "once", 2: "twice"}.get(n, f"{n:,} times")
        parts.append(f"at most {tcfg.get('vocab_size', 0):,} tokens, each seen at least "
                     f"{often}")
    if isinstance(vocab.unk_types, int):
        parts.append(f"<UNK> stands for {plural(vocab.unk_types, 'type')}")
    return "; ".join(parts)


def _plot(hist: list, path: Path) -> None:
    plt = pyplot()
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
