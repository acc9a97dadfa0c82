"""The Python API, mirroring the command line.

    import charlm
    lm = charlm.train(["corpus.txt"], out="models/char.npz", steps=2000, progress=True)
    lm = charlm.load_model("models/char.npz")
    print(lm.sample(seed=1))
    print(lm.score("the apple and pear salad").log_prob)
    tagger = charlm.train("train.conll", task="tag", valid="dev.conll", bidirectional=True)
    print(charlm.load_model("models/tag.npz").tag("Harry Potter met Hermione").entities)

``charlm train`` and :func:`train` share one implementation, :func:`prepare_training` (in
``runs.py``): the same default model path, the same refusal to overwrite, the same resume.
"""

from __future__ import annotations

import math
from dataclasses import fields
import sys
from pathlib import Path

import numpy as np

from .training import checkpoint
from .errors import ConfigError, CorpusError, ModelFileError
from .nn.sampling import sample as draw
from .nn.model import Model, ModelConfig
from .use.score import Scored, score, score_many
from .training.trainer import TrainConfig, Trainer, evaluate, reverse_lines


class LanguageModel:
    """A trained model with the operations the command line offers."""

    def __init__(self, model: Model, train_meta: dict | None = None):
        self.model = model
        self.train_meta = train_meta or {}

    @property
    def vocab(self):
        return self.model.vocab

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    def sample(self, seed: int | None = None, length: int | None = None, **options) -> str:
        """One sampled text. Options as ``charlm sample``: temperature, top_k, top_p,
        prime (text), allow_unk, stop_at_eos. A backward model (``reverse``) writes from the
        end of the line: its sample is returned reversed back, ending in ``prime``."""
        rng = np.random.default_rng(seed)
        prime = options.pop("prime", None)
        if prime and self.reverse:   # a backward model continues a line towards its start
            prime = prime[::-1]
        prime_ids = self.vocab.encode(prime) if prime else None
        length = length or (200 if self.vocab.level == "char" else 50)
        s = draw(self.model, rng, length=length, prime_ids=prime_ids, **options)
        text = self.vocab.continue_text(prime, s.ids)
        return reverse_lines(text) if self.reverse else text

    @property
    def reverse(self) -> bool:
        """Trained with ``reverse=True`` (``--reverse``): it reads each line from its end."""
        return bool((self.train_meta.get("config") or {}).get("reverse"))

    def score(self, text: str) -> Scored:
        """log P(text) as chained conditionals, including the final <EOS> (a backward model
        reads the text from its end)."""
        return self.score_many([text])[0]

    def score_many(self, texts, batch: int = 64) -> list[Scored]:
        texts = list(texts)
        if not self.reverse:
            return list(score_many(self.model, texts, batch))
        out = list(score_many(self.model, [t[::-1] for t in texts], batch))
        for r, t in zip(out, texts):
            r.text = t
        return out

    def log_probs(self, text: str) -> np.ndarray:
        """Natural-log conditional probability of each token of ``text`` and of <EOS>."""
        return score(self.model, text).log_probs

    def evaluate(self, text: str, per_line: bool = False, batch: int = 64,
                 on_progress=None) -> dict:
        """Mean NLL per token, perplexity and bits per character of a held-out text.

        Default: the very computation of training's validation (``train.evaluate``): the
        text cut into sequences by the model's own options (``prose``; its vocabulary
        lower-cases, tokenizes and normalises), one stream in the recorded ``eval_batch`` rows
        and ``bptt`` windows, the state carried across sequences, so the figure equals the
        validation loss training reported for the same file. ``per_line=True``: every
        sequence scored on its own from ``a<0> = 0`` (``batch`` at a time), as ``score``
        does; this is higher, since no sequence sees the one before it."""
        from .text.vocab import UNK_ID, sequence_chunks, split_sequences

        cfg = self.train_meta.get("config") or {}
        prose, level = bool(cfg.get("prose", False)), self.vocab.level
        seqs = [s for s in split_sequences(self.vocab.prepare(text), prose=prose, level=level)]
        if not any(s.strip() for s in seqs):
            raise CorpusError("There is no text to evaluate. Give a non-empty file.")
        n_chars = sum(len(s) + 1 for s in seqs)
        if per_line:
            total = oov_nll = 0.0
            n = n_oov = 0
            for r in score_many(self.model, seqs, batch, on_batch=on_progress):
                total -= r.log_prob
                n += r.n_tokens
                unk = r.ids == UNK_ID
                n_oov += int(unk.sum())
                oov_nll -= float(r.log_probs[unk].sum())
            mean, covered = total / n, 1.0
        else:
            ids = self.vocab.encode_chunks(sequence_chunks(text, prose=prose, level=level))
            m = max(1, min(int(cfg.get("eval_batch", 32)), len(ids)))
            T = int(cfg.get("bptt", 128))
            unk = [0, 0.0]       # <UNK> targets and their summed NLL, from the same pass

            def count_unk(logp, Y):
                at = Y == UNK_ID
                unk[0] += int(np.count_nonzero(at))
                unk[1] -= float(logp[at].sum())

            mean, n = evaluate(self.model, ids, m, T,
                               on_progress=(lambda k: on_progress(k)) if on_progress else None,
                               on_window=count_unk)
            total = mean * n
            n_oov, oov_nll = unk
            covered = n / max(len(ids), 1)     # the last (len mod m) tokens are left out
        return {"tokens": n, "oov": n_oov, "sequences": len(seqs), "nll": mean,
                "perplexity": math.exp(min(mean, 700)),
                "perplexity_without_oov": (math.exp(min((total - oov_nll) / (n - n_oov), 700))
                                           if n > n_oov else None),
                "bits_per_char": total / math.log(2) / (n_chars * covered),
                "mode": "per_line" if per_line else "stream"}

    def perplexity(self, text: str) -> float:
        """Per-token perplexity of ``text``, read as training's validation reads it (the
        model's own text options, its recorded rows and window): ``evaluate``'s figure."""
        return self.evaluate(text)["perplexity"]


# The object load_model returns for each task ("module:class", imported when needed): each
# is made as ``cls(model, train_meta)``.
TASK_OBJECTS = {"lm": "charlm.api:LanguageModel", "tag": "charlm.use.tagger:Tagger",
                "classify": "charlm.use.classifier:Classifier"}


def load_model(path: str | Path):
    """The model in a file, as the object of its task: a LanguageModel (``.sample``,
    ``.score``), a Tagger (``.tag``) or a Classifier (``.classify``)."""
    import importlib
    model, meta, _ = checkpoint.load(path)
    where = TASK_OBJECTS.get(model.config.task, "")
    try:
        module, name = where.split(":")
        cls = getattr(importlib.import_module(module), name)
    except (ValueError, ImportError, AttributeError):
        raise ModelFileError(f"{path} holds a {model.config.task} model, which this charlm "
                             "cannot use. Upgrade charlm.") from None
    return cls(model, meta)


def train(corpus=None, out: str | Path | None = None, valid: str | Path | None = None,
          callback=None, *, task: str = "lm", progress: bool = False, should_stop=None,
          **options):
    """Train a model on text files, as ``charlm train`` does (one implementation under both).

    ``corpus``: a path or a list of paths ('-' = standard input; None = the bundled tiny
    Shakespeare). ``out``: the model file (default ``models/<level>.npz``); an existing one is
    refused unless ``resume=True`` (continue it) or ``force=True`` (replace it, kept as .bak).
    Every other option is the command's option in snake_case: model shape (cell, layers,
    hidden, embed, dropout, …), text (level, tokenizer, prose, lowercase, encoding, …), run
    (lr, batch, bptt, steps, epochs, ``time`` as "90s"/"10m" or ``time_budget`` in seconds, …),
    ``init_from``, ``init_scale``. ``progress=True`` prints a line to stderr at every
    evaluation; ``callback(event)`` receives the trainer's events (plain dicts, see
    ``train.py``). Returns the trained model (its best parameters).

    ``task="tag"`` trains a tagger on a CoNLL file (no corpus: the bundled Broad Twitter
    Corpus), ``task="classify"`` a classifier on labelled lines (see ``classifier.train``);
    their ``out`` defaults to models/<task>.npz."""
    from .training.runs import prepare_training

    callbacks = [c for c in (callback, ProgressLines(sys.stderr) if progress else None) if c]
    cb = (lambda e: [c(e) for c in callbacks]) if callbacks else None  # noqa: E731
    if task != "lm":
        return _train_task(task, corpus, out, valid, cb, should_stop, options)
    trainer = prepare_training(corpus, out=out, valid=valid, callback=cb,
                               should_stop=should_stop, **options)
    reason = trainer.run_loop()
    if reason == "nothing" and cb is not None:
        cb({"kind": "warning", "message": nothing_trained(trainer)})
    return load_model(trainer.out)


def nothing_trained(trainer) -> str:
    """What to say when a resumed run had already reached its limits."""
    return (f"Nothing to train: the run in {trainer.out} already reached its limits at step "
            f"{trainer.run.step:,}; its file and history are unchanged. Give a new limit "
            "with the resume (e.g. --steps 1000: limits given with --resume count from now).")


class ProgressLines:
    """Plain progress lines (no terminal control): the start, every evaluation, warnings."""

    def __init__(self, stream):
        self.stream = stream

    def __call__(self, e: dict) -> None:
        k = e["kind"]
        if k == "start":
            line = (f"training: {e['params']:,} parameters, vocabulary {e['vocab']}, "
                    f"{e['tokens_per_epoch']:,} tokens per epoch")
        elif k == "eval":
            line = f"step {e['step']}  epoch {e['epoch']:.2f}  tokens {e['tokens']:,}"
            if e.get("train_loss") is not None:
                line += f"  train {e['train_loss']:.4f}"
            if e.get("valid_loss") is not None:
                line += f"  valid {e['valid_loss']:.4f} nats/token"
        elif k in ("warning", "notice"):
            line = ("Warning: " if k == "warning" else "") + e["message"]
        else:
            return
        print(line, file=self.stream, flush=True)


def _train_task(task, corpus, out, valid, callback, should_stop, options):
    """train() for a sentence task: build its data and model, then the one trainer. As for a
    language model, an existing model file is refused unless ``force=True`` (then kept as
    ``.bak``)."""
    from .training.runs import refuse_existing, set_aside

    out = Path(out if out is not None else f"models/{task}.npz")
    if options.pop("resume", False):
        raise ConfigError(f"charlm.train(task={task!r}) starts new runs only; continue a saved "
                          f"one with `charlm train --task {task} --resume --out {out}`.")
    refuse_existing(out, options.pop("force", False))
    if task == "classify":   # its own options (classes, label_column, folds): see there
        from .use.classifier import train as train_classifier
        set_aside(out, callback or (lambda e: None))
        return train_classifier(corpus if corpus is not None else (), out, valid,
                                callback=callback, should_stop=should_stop, **options)
    lm_features = options.pop("lm_features", None)   # LM files; the config keeps their size
    options.setdefault("level", "word")     # sentence tasks read word tokens
    model_keys = {f.name for f in fields(ModelConfig)} - {"task", "lm_features"}
    train_keys = {f.name for f in fields(TrainConfig)}
    unknown = set(options) - model_keys - train_keys
    if unknown:
        raise ConfigError(f"Unknown option(s): {', '.join(sorted(unknown))}.")
    mcfg = ModelConfig(task=task, **{k: v for k, v in options.items() if k in model_keys})
    tcfg = TrainConfig(**{k: v for k, v in options.items() if k in train_keys})
    mcfg.validate()
    tcfg.validate()
    if task != "tag":
        raise ConfigError(f"Unknown task {task!r}. Use lm, tag or classify.")
    from .tasks.tag import TagTask, create_model, load_data
    data = load_data(corpus, valid, tcfg)
    model = create_model(mcfg, data, np.random.default_rng(tcfg.seed), lm_features)
    set_aside(out, callback or (lambda e: None))
    Trainer(model, TagTask(data, tcfg, model), tcfg, out, callback, should_stop).run_loop()
    return load_model(out)


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """A text file's contents, with errors a user can act on."""
    p = Path(path)
    if not p.exists():
        raise CorpusError(f"No such file: {p}. Check the path.")
    if p.is_dir():
        raise CorpusError(f"{p} is a directory. Give a text file (or several).")
    return decode_text(p.read_bytes(), str(p), encoding)


def decode_text(data: bytes, name: str, encoding: str = "utf-8") -> str:
    """Bytes read from ``name`` (a file, standard input) as text, or a CorpusError."""
    if b"\x00" in data[:65536]:
        raise CorpusError(f"{name} looks like a binary file (it contains NUL bytes). "
                          "Give a plain text file.")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CorpusError(f"{name} is not valid {encoding}: byte {e.start} (line {line}) cannot "
                          "be decoded. Pass its encoding with --encoding, e.g. "
                          "--encoding latin-1.") from None
    except LookupError:
        raise ConfigError(f"Unknown encoding {encoding!r}. Use a Python codec name such as "
                          "utf-8 or latin-1.") from None
    return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
