"""Setting up a training run: what ``charlm train`` and ``charlm.train()`` decide before the
first step, in one place so that both follow the same rules.

- the model file: ``models/<level>.npz`` unless ``out`` is given; an existing file is refused
  unless ``resume`` (continue it) or ``force`` (replace it; the old file and its log are kept
  as ``.bak``);
- the corpus: files read with their ``encoding`` (``-`` = standard input; none = the bundled
  tiny Shakespeare), NFC-normalised by the vocabulary, and recorded in the model file with
  their sizes and SHA-256 checksums, so that a resume without a corpus reads them again and
  refuses files that changed;
- the limits: 0 for ``epochs``, ``steps`` or ``time`` is refused; none given means 10 minutes;
  limits given with ``resume`` count for this invocation;
- ``resume``: options that change the model's shape or the data (cell, hidden, level, batch,
  bptt, …) are refused, naming the option; ``lr``, ``clip``, the limits and the evaluation
  intervals may change, stated as a warning event and recorded in the next history record;
- ``init_from``: a saved model's vocabulary and parameters, with a fresh optimizer, schedule
  and history (tokens outside that vocabulary are read as ``<UNK>``, counted in a warning);
- ``init_scale``: every parameter drawn from U(-S, S) instead of the cells' initialisation.

Events before training (``warning``, ``notice``) go to ``callback`` as the trainer's do.

``reducer`` (``charlm.training.distributed.Reducer``, under ``mpiexec -n N``): every process sets up
the same run and trains its share of each batch; only rank 0 writes (the ``.bak`` renames,
the writability check, and later the log and the model file).
"""

from __future__ import annotations

import hashlib
import math
import os
import shlex
import sys
import tempfile
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from . import checkpoint
from ..errors import CharlmError, ConfigError, CorpusError, ModelFileError
from ..nn.model import Model, ModelConfig
from .trainer import TrainConfig, Trainer, log_path, parse_duration, prepare_corpus
from ..text.vocab import UNK_ID

DEFAULT_SECONDS = 600.0   # the budget when no limit is given
# Options a resumed run may change (stated and logged); every other one must match the run.
RESUMABLE = ("lr", "clip", "eval_every", "sample_every", "sample_length")
LIMITS = ("epochs", "steps", "time_budget")
_MODEL_KEYS = {f.name for f in fields(ModelConfig)}
_TRAIN_KEYS = {f.name for f in fields(TrainConfig)} - {"init_from", "encoding"} - set(LIMITS)


def default_out(level: str) -> Path:
    return Path("models") / f"{level}.npz"


def flag(name: str) -> str:
    """The command-line spelling of a keyword option."""
    return "--time" if name == "time_budget" else "--" + name.replace("_", "-")


# ----------------------------------------------------------------------- corpus
def read_corpus_file(path: str | Path, encoding: str) -> tuple[str, dict]:
    """A corpus file's text and its record: absolute path ('-' for stdin), bytes, sha256."""
    from ..api import decode_text, read_text

    if str(path) == "-":
        buf = getattr(sys.stdin, "buffer", None)
        data = buf.read() if buf is not None else sys.stdin.read().encode("utf-8")
        text, name = decode_text(data, "standard input", encoding), "-"
    else:
        p = Path(path)
        text = read_text(p, encoding)
        data, name = p.read_bytes(), str(p.resolve())
    return text, {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def read_recorded(rec: dict, encoding: str, out: Path) -> str:
    """A recorded corpus file read again; refused when it is gone or has changed."""
    path = rec.get("path")
    if path == "-":
        raise CorpusError(f"The run in {out} was trained on standard input, which cannot be "
                          "read again. Give the same text again: `charlm train - --resume "
                          f"--out {out} < CORPUS`.")
    if not Path(path).is_file():
        raise CorpusError(f"The corpus file {path} that the run in {out} was trained on is "
                          "gone. Give the corpus on the command line with --resume.")
    text, now = read_corpus_file(path, encoding)
    if now["sha256"] != rec.get("sha256"):
        raise CorpusError(f"The corpus file {path} has changed since the run in {out} was "
                          f"trained on it ({rec.get('bytes')} bytes then, {now['bytes']} now; "
                          "the SHA-256 checksum differs). Restore it, or start a new run "
                          "with --force.")
    return text


def _read_all(corpus, valid, encoding: str, callback) -> tuple[list[str], str | None, dict]:
    from ..text.bundled import bundled

    paths = [] if corpus is None else [corpus] if isinstance(corpus, (str, Path)) \
        else list(corpus)
    if not paths:
        paths = [bundled()]
        callback({"kind": "notice",
                  "message": "Training on the bundled corpus: tiny Shakespeare (1.1 MB)."})
    if [str(p) for p in paths + ([valid] if valid is not None else [])].count("-") > 1:
        raise ConfigError("Standard input ('-') can be read only once. Give a file for the "
                          "other corpus or for --valid.")
    texts, files = [], []
    for p in paths:
        t, rec = read_corpus_file(p, encoding)
        texts.append(t)
        files.append(rec)
    valid_text, vrec = (read_corpus_file(valid, encoding) if valid is not None
                        else (None, None))
    return texts, valid_text, {"files": files, "valid": vrec}


def resume_command(out: str | Path, corpus_record: dict | None = None,
                   task: str = "lm") -> str:
    """The command that continues the run saved in ``out``. A language model's corpus is
    recorded there (read again, checked by its checksum); without that record (an older
    file, a tagger or a classifier) the command names the corpus to give again."""
    stdin = corpus_record and any(f.get("path") == "-" for f in corpus_record.get("files", []))
    corpus = " -" if stdin else "" if corpus_record else " CORPUS..."
    return (f"charlm train{corpus}{'' if task == 'lm' else ' --task ' + task} --resume "
            f"--out {shlex.quote(str(out))}" + (" < CORPUS" if stdin else ""))


# ------------------------------------------------------------------------ limits
def given_limits(epochs, steps, time, time_budget) -> dict:
    """The limits given, in TrainConfig's units; 0 is refused (say what to write instead)."""
    if time is not None and time_budget is not None:
        raise ConfigError("Give the time limit once: time (e.g. '10m') or time_budget "
                          "(seconds).")
    if time is not None:
        time_budget = parse_duration(time) if isinstance(time, str) else float(time)
    given = {k: v for k, v in (("epochs", epochs), ("steps", steps),
                               ("time_budget", time_budget)) if v is not None}
    for k, v in given.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{flag(k)} must be a finite number (got {v}).")
        if v < 0:
            raise ConfigError(f"{flag(k)} must not be negative (got {v}).")
        if v == 0:
            raise ConfigError(f"{flag(k)} 0 is not a limit. Give a positive value, or leave "
                              f"{flag(k)} out (with no --epochs, --steps or --time a run trains "
                              f"for {DEFAULT_SECONDS / 60:g} minutes).")
    return given


# --------------------------------------------------------------------- the setup
def prepare_training(corpus=None, *, out: str | Path | None = None, valid=None,
                     resume: bool = False, force: bool = False, init_from=None,
                     epochs: int | None = None, steps: int | None = None, time=None,
                     time_budget: float | None = None, callback=None, should_stop=None,
                     reducer=None, **options) -> Trainer:
    """A Trainer ready to ``run_loop()``, set up by the rules in this module's docstring.
    ``options``: ModelConfig and TrainConfig fields, ``encoding``; only the ones the caller
    gave (a resume compares those with the saved run)."""
    unknown = set(options) - _MODEL_KEYS - _TRAIN_KEYS - {"encoding"}
    if unknown:
        raise ConfigError(f"Unknown option(s): {', '.join(sorted(unknown))}. Use the options "
                          "of `charlm train` in snake_case.")
    callback = callback or (lambda e: None)
    limits = given_limits(epochs, steps, time, time_budget)
    level = options.get("level", "char")
    out = Path(out) if out is not None else default_out(level)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory. Give a file name, e.g. "
                          f"--out {out / (level + '.npz')}.")
    if resume and force:
        raise ConfigError("--resume continues the file that --force would replace. "
                          "Use one of them.")
    if resume and init_from is not None:
        raise ConfigError("--resume continues a run; --init-from starts a new one from a "
                          "saved model. Use one of them.")
    if resume:
        trainer = _resume(corpus, out, valid, limits, options, callback, reducer)
    else:
        refuse_existing(out, force)
        trainer = _new_run(corpus, out, valid, init_from, limits, options, callback, reducer)
    trainer.callback = callback
    trainer.should_stop = should_stop or (lambda: False)
    if reducer is None or reducer.is_writer:
        check_writable(out)
    return trainer


def _new_run(corpus, out: Path, valid, init_from, limits: dict, options: dict,
             callback, reducer=None) -> Trainer:
    source = None
    if init_from is not None:
        source, _, _ = checkpoint.load(init_from)
        _init_from_options(source, options, init_from)
    mcfg = (source.config if source is not None else
            ModelConfig(**{k: v for k, v in options.items() if k in _MODEL_KEYS}))
    mcfg.validate()
    tcfg = TrainConfig(**{k: v for k, v in options.items() if k in _TRAIN_KEYS},
                       **{k: limits.get(k, 0) for k in LIMITS},
                       encoding=options.get("encoding", "utf-8"))
    if not limits:
        tcfg.time_budget = DEFAULT_SECONDS
    if source is not None:
        v = source.vocab
        tcfg.level, tcfg.lowercase, tcfg.tokenizer = v.level, v.lowercase, v.tokenizer
        tcfg.unk_token = v.unk_token or ""
        tcfg.init_from = str(Path(init_from).resolve())
    tcfg.validate()
    texts, valid_text, record = _read_all(corpus, valid, tcfg.encoding, callback)
    data = prepare_corpus(texts, tcfg, valid_text,
                          vocab=source.vocab if source is not None else None)
    if source is not None:
        model = Model(source.config, source.vocab, {k: v.copy() for k, v in source.params.items()})
        n_unk = int(np.count_nonzero(data.train_ids == UNK_ID))
        if n_unk:
            callback({"kind": "warning", "message":
                      f"{n_unk:,} of the {len(data.train_ids):,} training tokens are outside "
                      f"the vocabulary of {init_from} and are read as <UNK>."})
    else:
        if len(data.vocab) == 3:  # degenerate but trainable: see prepare_corpus
            callback({"kind": "warning", "message":
                      f"the vocabulary has one token besides <EOS> and <UNK> "
                      f"({data.vocab.tokens[2]!r}); the model can learn little more than "
                      "where sequences end."})
        model = Model.create(mcfg, data.vocab, np.random.default_rng(tcfg.seed))
        if tcfg.init_scale is not None:
            rng = np.random.default_rng([tcfg.seed, 3])
            for k, p in model.params.items():
                p[...] = rng.uniform(-tcfg.init_scale, tcfg.init_scale, p.shape)
    if reducer is None or reducer.is_writer:
        set_aside(out, callback)
    trainer = Trainer(model, data, tcfg, out, callback, reducer=reducer)
    trainer.corpus_record = record
    return trainer


def _init_from_options(source: Model, options: dict, init_from) -> None:
    """Shape and vocabulary options come from the --init-from model; others must agree."""
    saved = {**source.config.to_json(), "level": source.vocab.level,
             "lowercase": source.vocab.lowercase, "tokenizer": source.vocab.tokenizer}
    fixed = {"vocab_size", "min_count", "unk_token"}
    for k, v in options.items():
        if k in fixed or (k in saved and v != saved[k]):
            raise ConfigError(f"{flag(k)} cannot be set with --init-from: the model's shape "
                              f"and vocabulary come from {init_from}"
                              + (f" ({flag(k)} {saved[k]})." if k in saved else ".")
                              + f" Leave {flag(k)} out.")


def load_resumable(out: Path):
    """The model file a ``--resume`` continues, of any task: (model, meta, arrays, its
    TrainConfig); a one-line error when there is none or it holds no training state."""
    if not out.exists():
        raise ModelFileError(f"Nothing to resume: no model file at {out}. "
                             "Check --out, or drop --resume to start a new run.")
    model, meta, arrays = checkpoint.load(out)
    if not meta or "run" not in meta:
        raise ModelFileError(f"{out} holds no training state to resume.")
    return model, meta, arrays, TrainConfig.from_json(meta["config"])


def _resume(corpus, out: Path, valid, limits: dict, options: dict, callback,
            reducer=None) -> Trainer:
    model, meta, arrays, tcfg = load_resumable(out)
    saved = {**model.config.to_json(), **asdict(tcfg)}
    for k, v in options.items():
        if k not in RESUMABLE and k in saved and v != saved[k]:
            raise ConfigError(f"{flag(k)} {v} differs from the saved run's {flag(k)} "
                              f"{saved[k]}: a resumed run keeps its shape, text and data "
                              f"options. Leave {flag(k)} out, or start a new run with --force.")
    record = meta.get("corpus")
    if corpus is None and record:    # the corpus the run recorded, checked
        texts = [read_recorded(f, tcfg.encoding, out) for f in record["files"]]
        valid_text = (read_recorded(record["valid"], tcfg.encoding, out)
                      if valid is None and record.get("valid") else None)
        if valid is not None:
            valid_text, record["valid"] = read_corpus_file(valid, tcfg.encoding)
    else:
        texts, valid_text, new = _read_all(corpus, valid, tcfg.encoding, callback)
        if valid is None and record and record.get("valid"):
            valid_text = read_recorded(record["valid"], tcfg.encoding, out)
            new["valid"] = record["valid"]
        record = new
    data = prepare_corpus(texts, tcfg, valid_text)
    if data.vocab.tokens != model.vocab.tokens:
        raise ConfigError("This corpus gives a different vocabulary from the one the "
                          f"saved run in {out} was trained with. Resume with the "
                          "same corpus and options.")
    trainer = Trainer(model, data, tcfg, out, callback, reducer=reducer)
    trainer.restore(meta, arrays)
    trainer.corpus_record = record
    run, changes = trainer.run, {}
    for k in RESUMABLE:
        if k in options and options[k] != getattr(tcfg, k):
            changes[k] = [getattr(tcfg, k), options[k]]
            setattr(tcfg, k, options[k])
    if "lr" in changes:
        changes["lr"][0] = run.lr          # the rate the run had reached
        run.lr = trainer.opt.lr = float(options["lr"])
    if limits:   # for this invocation: counted from where the run stands now
        tcfg.epochs = run.epoch + limits["epochs"] if "epochs" in limits else 0
        tcfg.steps = run.step + limits["steps"] if "steps" in limits else 0
        tcfg.time_budget = (run.elapsed + limits["time_budget"] if "time_budget" in limits
                            else 0.0)
        changes["limits"] = {flag(k)[2:]: v for k, v in limits.items()}
    tcfg.validate()
    if changes:
        trainer.changes = changes
        said = ", ".join(f"{flag(k)} {v[0]:g} -> {v[1]:g}" for k, v in changes.items()
                         if k != "limits")
        if "limits" in changes:
            said += (", " if said else "") + "limits for this invocation: " + ", ".join(
                f"{k} {v:g}" for k, v in changes["limits"].items())
        callback({"kind": "warning", "message": f"resuming {out} with changes: {said}."})
    return trainer


def refuse_existing(out: Path, force: bool) -> None:
    """A new run never replaces a model file unless told to (--force)."""
    if Path(out).exists() and not force:
        raise CharlmError(f"{out} already exists. Continue it with --resume, replace it with "
                          "--force (the old file is kept as .bak), or choose another --out.")


def set_aside(out: Path, callback) -> None:
    """Before a new run replaces ``out``: keep the old file (and its log) as ``.bak``."""
    out = Path(out)
    if not out.exists():
        return
    backup = out.with_name(out.name + ".bak")
    out.replace(backup)
    callback({"kind": "notice", "message": f"Replacing {out}; the old file is kept as {backup}."})
    old_log = log_path(out)
    if old_log.exists():   # the new run starts its own log; keep the old one too
        old_log.replace(old_log.with_name(old_log.name + ".bak"))


def check_writable(out_file: Path) -> None:
    """Fail now, not after hours of training, when the model file cannot be written."""
    try:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out_file.name}.", suffix=".tmp",
                                   dir=out_file.parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        parent = next((p for p in out_file.parents if p.exists()), None)
        why = (f"{parent} is not a directory" if parent is not None and not parent.is_dir()
               else e.strerror or str(e))
        raise ModelFileError(f"Cannot write the model file {out_file} ({why}). Choose another "
                             "--out, or check the directory's permissions.") from None
