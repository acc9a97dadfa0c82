"""Setting up a training run: what ``charlm train`` and ``charlm.train()`` decide before the
first step, for every task, in one place so that all follow the same rules.

- the task (``lm``, ``tag``, ``classify``): its data reading, head and metric come from
  :mod:`charlm.tasks`; options that apply to another task only are refused, naming the task;
  options not given take the task's defaults (``task.DEFAULTS``, then the configs');
- the model file: ``models/<level>.npz`` (a language model) or ``models/<task>.npz`` unless
  ``out`` is given; an existing file is refused unless ``resume`` (continue it) or ``force``
  (replace it; the old file and its log are kept as ``.bak``);
- the data: files read with their ``encoding`` (``-`` = standard input; none = the task's
  bundled corpus), and recorded in the model file with their sizes and SHA-256 checksums, so
  that a resume without a corpus reads them again and refuses files that changed;
- the limits: 0 for ``epochs``, ``steps`` or ``time`` is refused; none given means 10 minutes;
  limits given with ``resume`` count for this invocation;
- ``resume``: options that change the model's shape or the data (cell, hidden, level, batch,
  bptt, …) are refused, naming the option; ``lr``, ``clip``, the limits and the evaluation
  intervals may change, stated as a warning event and recorded in the next history record;
- ``init_from``: a language model: a saved model's vocabulary and parameters, with a fresh
  optimizer, schedule and history (tokens outside that vocabulary are read as ``<UNK>``,
  counted in a warning). A tagger or classifier: its encoder starts from one language model of
  the same level (the forward direction and the embedding, matched by token) or two, "FWD.npz,
  BWD.npz" (a ``--reverse`` one for the backward direction), see :mod:`charlm.nn.transfer`;
  shape and text options not given come from the LM, given ones must fit it; the head is new
  and a warning counts the tokens that the LM does not know;
- ``init_scale``: every parameter drawn from U(-S, S) instead of the cells' initialisation.

Events before training (``warning``, ``notice``) go to ``callback`` as the trainer's do.

``reducer`` (``charlm.training.distributed.Reducer``, under ``mpiexec -n N``): every process sets
up the same run and trains its share of each batch; only rank 0 writes (the ``.bak`` renames,
the writability check, and later the log and the model file).
"""

from __future__ import annotations

import math
import os
import shlex
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ..errors import CharlmError, ConfigError, CorpusError, ModelFileError
from ..nn import transfer
from ..nn.model import Model, ModelConfig
from ..tasks import TASKS
from ..text.files import Sources, read_corpus_file
from ..text.vocab import UNK_ID
from . import checkpoint
from .trainer import TrainConfig, Trainer, log_path, parse_duration

DEFAULT_SECONDS = 600.0   # the budget when no limit is given
# Options a resumed run may change (stated and logged); every other one must match the run.
RESUMABLE = ("lr", "clip", "eval_every", "sample_every", "sample_length")
LIMITS = ("epochs", "steps", "time_budget")
_MODEL_KEYS = {f.name for f in fields(ModelConfig)} - {"task", "lm_features"}
_TRAIN_KEYS = {f.name for f in fields(TrainConfig)} - {"init_from", "encoding"} - set(LIMITS)
# Options of the run itself, not of either config: the files of one class each (classify) and
# the feature LMs' files (tag).
_RUN_KEYS = {"encoding", "classes", "lm_features", "folds"}


# ---------------------------------------------------------------------- options
def task_module(task: str):
    mod = TASKS.get(task)
    if mod is None:
        raise ConfigError(f"Unknown task {task!r}. Use lm, tag or classify.")
    return mod


MODEL_NAMES = {"lm": "language models", "tag": "taggers", "classify": "classifiers"}


def train_option_owners() -> dict[str, tuple]:
    """Each option of ``charlm train`` that applies to some tasks only: the tasks (from each
    task module's ``OPTIONS``)."""
    owners: dict[str, tuple] = {}
    for t, mod in TASKS.items():
        for name in mod.OPTIONS:
            owners[name] = owners.get(name, ()) + (t,)
    return owners


def check_task_options(task: str, given, owners: dict | None = None,
                       subject: str | None = None) -> None:
    """An option given that applies to other tasks only is a one-line error naming the task.

    ``owners``: option -> the tasks it applies to (default: the task modules' ``OPTIONS``,
    for ``charlm train``); ``subject``: what the option was given for, in the message (default
    ``--task TASK``; ``charlm eval`` names the model file)."""
    owners = train_option_owners() if owners is None else owners
    task_module(task)
    for name in sorted(given):
        tasks = owners.get(name)
        if tasks and task not in tasks:
            whom = " and ".join(f"--task {t}" for t in tasks) if subject is None else \
                " and ".join(MODEL_NAMES[t] for t in tasks)
            raise ConfigError(f"{flag(name)} does not apply to {subject or '--task ' + task} "
                              f"(it is for {whom}). Drop it.")


def task_defaults(task: str, options: dict) -> dict:
    """The options given, completed with the task's own defaults (a given option wins)."""
    mod = task_module(task)
    return mod.complete({**mod.DEFAULTS, **options}, options)


def default_out(level: str, task: str = "lm") -> Path:
    """models/<level>.npz for a language model, models/<task>.npz for the others."""
    return Path("models") / f"{level if task == 'lm' else task}.npz"


FLAGS = {"time_budget": "--time", "classes": "--class", "out_path": "--out"}


def flag(name: str) -> str:
    """The command-line spelling of a keyword option."""
    return FLAGS.get(name) or "--" + name.replace("_", "-")


def keyword(name: str) -> str:
    """The Python API's spelling of an option (:func:`charlm.train`): ``resume=True``,
    ``out=PATH``. Messages that tell the caller which option to use take ``flag`` or this
    as their ``spell``, so one message serves the command line and the library."""
    return f"{name}=True" if name in ("resume", "force") else f"{name}=PATH"


# ----------------------------------------------------------------------- corpus
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


def read_sources(task: str, corpus, valid, classes, encoding: str,
                 callback) -> tuple[Sources, dict]:
    """The run's files read (none: the task's bundled corpus, with a notice), and their
    record for the model file."""
    paths = [] if corpus is None else [corpus] if isinstance(corpus, (str, Path)) \
        else list(corpus)
    classes = [parse_class_spec(c) for c in classes or ()]
    if not paths and not classes:
        mod = task_module(task)
        paths, bundled_valid = mod.default_corpus()
        valid = bundled_valid if valid is None else valid
        callback({"kind": "notice", "message": mod.DEFAULT_NOTICE})
    named = [str(p) for p in paths] + [str(p) for _, p in classes] \
        + ([str(valid)] if valid is not None else [])
    if named.count("-") > 1:
        raise ConfigError("Standard input ('-') can be read only once. Give a file for the "
                          "other corpus or for --valid.")
    sources, record = Sources(), {"files": [], "valid": None}
    for p in paths:
        text, rec = read_corpus_file(p, encoding)
        sources.files.append((str(p), text))
        record["files"].append(rec)
    for label, p in classes:
        text, rec = read_corpus_file(p, encoding)
        sources.classes.append((label, str(p), text))
        record.setdefault("classes", []).append({"label": label, **rec})
    if valid is not None:
        text, record["valid"] = read_corpus_file(valid, encoding)
        sources.valid = (str(valid), text)
    return sources, record


def read_recorded_sources(record: dict, valid, encoding: str, out: Path) -> tuple[Sources, dict]:
    """The files a saved run recorded, read again (checked by their checksums); ``valid``
    given now replaces the recorded validation file."""
    sources = Sources([(f["path"], read_recorded(f, encoding, out)) for f in record["files"]],
                      classes=[(c["label"], c["path"], read_recorded(c, encoding, out))
                               for c in record.get("classes", [])])
    if valid is not None:
        text, rec = read_corpus_file(valid, encoding)
        sources.valid, record = (str(valid), text), {**record, "valid": rec}
    elif record.get("valid"):
        sources.valid = (record["valid"]["path"],
                         read_recorded(record["valid"], encoding, out))
    return sources, record


def parse_class_spec(spec) -> tuple[str, str]:
    """``--class pos=FILE`` (or a (label, path) pair) -> ("pos", "FILE")."""
    if not isinstance(spec, str):
        label, path = spec
        return str(label), str(path)
    label, sep, path = spec.partition("=")
    if not sep or not label.strip() or not path:
        raise ConfigError(f"--class takes LABEL=FILE (got {spec!r}), e.g. --class pos=pos.txt.")
    return label.strip(), path


def resume_command(out: str | Path, corpus_record: dict | None = None,
                   task: str = "lm") -> str:
    """The command that continues the run saved in ``out``. Its corpus is recorded there
    (read again, checked by its checksum); without that record (a file written before runs
    recorded their corpus) the command names the corpus to give again."""
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
@dataclass
class Plan:
    """A new run decided but not yet started: what :func:`prepare_training` builds its
    Trainer from, and what cross-validation (:mod:`charlm.training.folds`) repeats per fold."""

    task: str
    out: Path
    mcfg: ModelConfig
    tcfg: TrainConfig
    sources: Sources
    record: dict
    source: Model | None = None        # the --init-from model (a language model's run)
    lms: list = field(default_factory=list)   # --lm-features: [(Model, reverse)]
    encoder_from: list = field(default_factory=list)   # tag, classify --init-from: [(Model, path)]


def prepare_training(corpus=None, *, task: str = "lm", out: str | Path | None = None,
                     valid=None, resume: bool = False, force: bool = False, init_from=None,
                     epochs: int | None = None, steps: int | None = None, time=None,
                     time_budget: float | None = None, callback=None, should_stop=None,
                     reducer=None, classes=None, lm_features=None, spell=flag,
                     **options) -> Trainer:
    """A Trainer ready to ``run_loop()``, set up by the rules in this module's docstring.
    ``options``: ModelConfig and TrainConfig fields, ``encoding``; only the ones the caller
    gave (a resume compares those with the saved run). ``spell``: how messages write the
    options that settle a refusal (:func:`flag` for the command line, :func:`keyword` for
    the Python API)."""
    callback = callback or (lambda e: None)
    planned = _plan(corpus, task, out, valid, resume, force, init_from,
                    given_limits(epochs, steps, time, time_budget), callback, classes,
                    lm_features, options, reducer, spell)
    trainer = planned if isinstance(planned, Trainer) else start(planned, callback, reducer)
    trainer.callback = callback
    trainer.should_stop = should_stop or (lambda: False)
    if reducer is None or reducer.is_writer:
        check_writable(trainer.out)
    return trainer


def plan_training(corpus=None, *, task: str = "lm", out=None, valid=None, force: bool = False,
                  init_from=None, epochs=None, steps=None, time=None, time_budget=None,
                  callback=None, classes=None, lm_features=None, spell=flag,
                  **options) -> Plan:
    """A new run decided by the same rules as :func:`prepare_training`, not yet started
    (cross-validation starts one run per fold from it)."""
    return _plan(corpus, task, out, valid, False, force, init_from,
                 given_limits(epochs, steps, time, time_budget),
                 callback or (lambda e: None), classes, lm_features, options, None, spell)


def _plan(corpus, task, out, valid, resume, force, init_from, limits, callback, classes,
          lm_features, options, reducer=None, spell=flag):
    unknown = set(options) - _MODEL_KEYS - _TRAIN_KEYS - _RUN_KEYS
    if unknown:
        raise ConfigError(f"Unknown option(s): {', '.join(sorted(unknown))}. Use the options "
                          "of `charlm train` in snake_case.")
    given = set(options) | ({"classes"} if classes else set()) \
        | ({"lm_features"} if lm_features else set())
    check_task_options(task, given)
    level = task_defaults(task, options).get("level", "char")
    out = Path(out) if out is not None else default_out(level, task)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory. Give a file name, e.g. "
                          f"--out {out / (level + '.npz')}.")
    if resume and force:
        raise ConfigError(f"{spell('resume')} continues the file that {spell('force')} would "
                          "replace. Use one of them.")
    if resume and init_from is not None:
        raise ConfigError(f"{spell('resume')} continues a run; {spell('init_from')} starts "
                          "a new one from a saved model. Use one of them.")
    if resume:
        return _resume(task, corpus, out, valid, classes, limits, options, callback, reducer,
                       spell)
    refuse_existing(out, force, spell)
    return plan_new(task, corpus, out, valid, init_from, limits, options, callback, classes,
                    lm_features)


def plan_new(task, corpus, out: Path, valid, init_from, limits: dict, options: dict,
             callback, classes=None, lm_features=None) -> Plan:
    """A new run's configs, data and starting point (nothing is trained or written)."""
    mod = task_module(task)
    given, options = options, task_defaults(task, options)
    source, encoder_from = None, []
    if init_from is not None and task == "lm":
        if len(split_paths(init_from)) > 1:
            raise ConfigError("A language model starts from one model file: give one "
                              "--init-from.")
        source, _, _ = checkpoint.load(init_from)
        _init_from_options(source, options, init_from)
    elif init_from is not None:
        encoder_from = load_encoder_lms(init_from)
        options = {**options, **lm_options(encoder_from[0][0]), **given}
    mcfg = (source.config if source is not None else
            ModelConfig(task=task, **{k: v for k, v in options.items() if k in _MODEL_KEYS}))
    mcfg.validate()
    for k, (lm, path, reverse) in enumerate(encoder_from):
        transfer.check_lm(lm, reverse, mcfg, options.get("level", "char"), path, k == 1)
    if len(encoder_from) == 2 and not mcfg.bidirectional:
        raise ConfigError("The second --init-from model starts the backward direction, which "
                          "a unidirectional model has not. Add --bidirectional, or give one "
                          "language model.")
    encoder_from = [(lm, path) for lm, path, _ in encoder_from]
    tcfg = TrainConfig(**{k: v for k, v in options.items() if k in _TRAIN_KEYS},
                       **{k: limits.get(k, 0) for k in LIMITS},
                       encoding=options.get("encoding", "utf-8"))
    if not limits:
        tcfg.time_budget = DEFAULT_SECONDS
    if source is not None:
        v = source.vocab
        tcfg.level, tcfg.lowercase, tcfg.tokenizer = v.level, v.lowercase, v.tokenizer
        tcfg.unk_token = v.unk_token or ""
    if init_from is not None:
        tcfg.init_from = ",".join(str(checkpoint.locate(p).resolve())
                                  for p in split_paths(init_from))
    tcfg.validate()
    lms = load_feature_lms(split_paths(lm_features), callback)
    mcfg.lm_features = sum(lm.config.hidden for lm, _ in lms)
    mod.check(mcfg, tcfg)
    sources, record = read_sources(task, corpus, valid, classes, tcfg.encoding, callback)
    return Plan(task, out, mcfg, tcfg, sources, record, source, lms, encoder_from)


def load_encoder_lms(init_from) -> list:
    """The language models of a tagger's or classifier's --init-from ("FWD.npz" or
    "FWD.npz,BWD.npz"): [(Model, path, reverse)], each refused with a one-line error when it
    is no model file (their fit is checked against the run's config by
    :func:`charlm.nn.transfer.check_lm`)."""
    paths = split_paths(init_from)
    if not 1 <= len(paths) <= 2:
        raise ConfigError("--init-from takes one language model, or two for a bidirectional "
                          "model: FWD.npz,BWD.npz (the second trained with --reverse).")
    out = []
    for p in paths:
        lm, meta, _ = checkpoint.load(p)
        if lm.config.task != "lm":
            raise ConfigError(f"{p} holds a {lm.config.task} model, not a language model. "
                              "--init-from for --task tag or classify takes a file written "
                              "by `charlm train` (--task lm).")
        out.append((lm, p, bool((meta.get("config") or {}).get("reverse", False))))
    return out


def lm_options(lm: Model) -> dict:
    """What a tagger or classifier takes from the LM its encoder starts from, unless given:
    the layers' shape, and how text becomes tokens (so that the tokens match)."""
    return {**{k: getattr(lm.config, k) for k in transfer.SHAPE_KEYS},
            "lowercase": lm.vocab.lowercase, "tokenizer": lm.vocab.tokenizer}


def start_encoder(model: Model, encoder_from: list, callback) -> dict:
    """Copy the --init-from LMs into a new tagger's or classifier's parameters (see
    :mod:`charlm.nn.transfer`), saying what was copied and how many tokens were not."""
    (fwd, path), *rest = encoder_from
    done = transfer.start_from_lms(model, fwd, rest[0][0] if rest else None)
    both = " and the backward direction from " + rest[0][1] if rest else ""
    callback({"kind": "notice", "message":
              f"The encoder starts from {path} (its embedding and {fwd.config.layers} "
              f"layer{'s' if fwd.config.layers != 1 else ''}){both}; the output layer is new."})
    missing = done["vocab"] - done["matched"]
    if missing:
        callback({"kind": "warning", "message":
                  f"{missing:,} of the {done['vocab']:,} tokens of this run's vocabulary are "
                  f"not in {path}'s; their embeddings start fresh."})
    return done


def split_paths(paths) -> list[str]:
    """--lm-features "fwd.npz,bwd.npz" (spaces around the commas allowed) or a list."""
    if not paths:
        return []
    if isinstance(paths, (str, Path)):
        paths = str(paths).split(",")
    return [str(p).strip() for p in paths if str(p).strip()]


def load_feature_lms(paths: list[str], callback) -> list:
    """The --lm-features models, [(Model, reverse)]. The same file twice is refused (it adds
    its features twice, and nothing else); two or more that all read forwards get a warning:
    the features are meant to see each word from both sides (one LM trained with
    --reverse)."""
    seen: dict[str, str] = {}
    for p in paths:
        key = os.path.realpath(p)
        if key in seen:
            also = "" if seen[key] == p else f" (also as {seen[key]})"
            raise ConfigError(f"--lm-features names {p} twice{also}. Give each model once: "
                              "a forward and a backward (--reverse) character LM.")
        seen[key] = p
    lms = [checkpoint.load_lm(p) for p in paths]
    if len(lms) > 1 and not any(rev for _, rev in lms):
        callback({"kind": "warning", "message":
                  f"all {len(lms)} --lm-features models read forwards (none was trained with "
                  "--reverse), so no feature sees the words after each word. Train a "
                  "backward one with `charlm train --reverse` and give it instead of one of "
                  "them."})
    return lms


def build(plan: Plan, callback, sources: Sources | None = None, tcfg: TrainConfig | None = None):
    """The data and a new model of a plan (``sources``, ``tcfg``: a fold's instead)."""
    mod, tcfg = task_module(plan.task), tcfg or plan.tcfg
    data = mod.read_data(sources or plan.sources, tcfg, plan.source)
    if plan.source is not None:
        source = plan.source
        model = Model(source.config, source.vocab,
                      {k: v.copy() for k, v in source.params.items()}, source.labels,
                      source.features)
        n_unk = int(np.count_nonzero(data.train_ids == UNK_ID))
        if n_unk:
            callback({"kind": "warning", "message":
                      f"{n_unk:,} of the {len(data.train_ids):,} training tokens are outside "
                      f"the vocabulary of {tcfg.init_from} and are read as <UNK>."})
        return data, model
    if plan.task == "lm" and len(data.vocab) == 3:  # degenerate but trainable: prepare_corpus
        callback({"kind": "warning", "message":
                  f"the vocabulary has one token besides <EOS> and <UNK> "
                  f"({data.vocab.tokens[2]!r}); the model can learn little more than "
                  "where sequences end."})
    model = mod.create_model(plan.mcfg, data, np.random.default_rng(tcfg.seed), plan.lms)
    uniform_init(model, tcfg)
    if plan.encoder_from:
        start_encoder(model, plan.encoder_from, callback)
    return data, model


def uniform_init(model, tcfg) -> None:
    """``--init-scale S``: every parameter of a new model drawn again from U(-S, S) (seeded by
    the run's seed); nothing without it."""
    if tcfg.init_scale is not None:
        rng = np.random.default_rng([tcfg.seed, 3])
        for p in model.params.values():
            p[...] = rng.uniform(-tcfg.init_scale, tcfg.init_scale, p.shape)


def start(plan: Plan, callback, reducer=None) -> Trainer:
    """The Trainer of a planned new run; the old model file, if any, is set aside now."""
    data, model = build(plan, callback)
    if reducer is None or reducer.is_writer:
        set_aside(plan.out, callback)
    task = task_module(plan.task).make_task(data, plan.tcfg, model, reducer)
    trainer = Trainer(model, task, plan.tcfg, plan.out, callback, reducer=reducer)
    trainer.corpus_record = plan.record
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


def load_resumable(out: Path, spell=flag):
    """The model file a ``--resume`` continues, of any task: (model, meta, arrays, its
    TrainConfig); a one-line error when there is none or it holds no training state."""
    if not out.exists():
        raise ModelFileError(f"Nothing to resume: no model file at {out}. Check "
                             f"{spell('out')}, or drop {spell('resume')} to start a new run.")
    model, meta, arrays = checkpoint.load(out)
    if not meta or "run" not in meta:
        raise ModelFileError(f"{out} holds no training state to resume.")
    if not any(k.startswith("train/param/") for k in arrays):   # a shipped copy, stripped
        raise ModelFileError(f"{out} holds a finished model without its training state "
                             "(optimizer and latest parameters), so it cannot be resumed. "
                             f"Start a new run from it with --init-from {out}.")
    return model, meta, arrays, TrainConfig.from_json(meta["config"])


def _resume(task, corpus, out: Path, valid, classes, limits: dict, options: dict,
            callback, reducer=None, spell=flag) -> Trainer:
    model, meta, arrays, tcfg = load_resumable(out, spell)
    if model.config.task != task:
        raise ConfigError(f"{out} holds a {model.config.task} model; resume it with --task "
                          f"{model.config.task}, or choose another --out.")
    saved = {**model.config.to_json(), **asdict(tcfg)}
    for k, v in options.items():
        if k not in RESUMABLE and k in saved and v != saved[k]:
            raise ConfigError(f"{flag(k)} {v} differs from the saved run's {flag(k)} "
                              f"{saved[k]}: a resumed run keeps its shape, text and data "
                              f"options. Leave {flag(k)} out, or start a new run with --force.")
    record = meta.get("corpus")
    if corpus is None and not classes and record:    # the corpus the run recorded, checked
        sources, record = read_recorded_sources(record, valid, tcfg.encoding, out)
    else:
        sources, new = read_sources(task, corpus, valid, classes, tcfg.encoding, callback)
        if valid is None and record and record.get("valid"):
            sources.valid = (record["valid"]["path"],
                             read_recorded(record["valid"], tcfg.encoding, out))
            new["valid"] = record["valid"]
        record = new
    mod = task_module(task)
    data = mod.read_data(sources, tcfg, model if task != "lm" else None)
    if not mod.same_data(model, data):
        raise ConfigError("This data gives a different vocabulary or label set from the one "
                          f"the saved run in {out} was trained with. Resume with the same "
                          "files and options.")
    trainer = Trainer(model, mod.make_task(data, tcfg, model, reducer), tcfg, out, callback,
                      reducer=reducer)
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


def nothing_trained(trainer) -> str:
    """What to say when a resumed run had already reached its limits."""
    return (f"Nothing to train: the run in {trainer.out} already reached its limits at step "
            f"{trainer.run.step:,}; its file and history are unchanged. Give a new limit "
            "with the resume (e.g. --steps 1000: limits given with --resume count from now).")


def refuse_existing(out: Path, force: bool, spell=flag) -> None:
    """A new run never replaces a model file unless told to (--force; ``spell``: how the
    caller writes options, :func:`flag` or :func:`keyword`)."""
    if Path(out).exists() and not force:
        raise CharlmError(f"{out} already exists. Continue it with {spell('resume')}, replace "
                          f"it with {spell('force')} (the old file is kept as .bak), or choose "
                          f"another file with {spell('out')}.")


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
