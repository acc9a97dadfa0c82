"""The Python API, mirroring the command line.

    import charlm
    lm = charlm.train(["corpus.txt"], out="models/char.npz", steps=2000)
    lm = charlm.load_model("models/char.npz")
    print(lm.sample(seed=1))
    print(lm.score("the apple and pear salad").log_prob)
    tagger = charlm.train("train.conll", task="tag", valid="dev.conll", bidirectional=True)
    print(charlm.load_model("models/tag.npz").tag("Harry Potter met Hermione").entities)
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from . import checkpoint
from .errors import ConfigError, CorpusError, ModelFileError
from .generate import sample as draw
from .model import Model, ModelConfig
from .score import Scored, score, score_many
from .train import TrainConfig, Trainer, evaluate, prepare_corpus, reverse_lines


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
        text = (prime or "") + self.vocab.decode(s.ids)
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

    def perplexity(self, text: str) -> float:
        """Per-token perplexity of ``text`` read as one stream (as validation does)."""
        ids = self.vocab.encode_sequences(text.split("\n"))
        nll, _ = evaluate(self.model, ids, m=1)
        return float(np.exp(nll))


# The object load_model returns for each task ("module:class", imported when needed): each
# is made as ``cls(model, train_meta)``.
TASK_OBJECTS = {"lm": "charlm.api:LanguageModel", "tag": "charlm.tagger:Tagger",
                "classify": "charlm.classifier:Classifier"}


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


def train(corpus: list[str | Path] | str | Path | None = None, out: str | Path | None = None,
          valid: str | Path | None = None, callback=None, task: str = "lm", **options):
    """Train a model; options are the ``charlm train`` options in snake_case (model shape:
    cell, layers, hidden, embed, dropout, bidirectional, …; run: lr, batch, bptt, steps,
    epochs, time_budget, patience, …). ``task``: "lm" (text files), "tag" (a CoNLL file; no
    corpus: the bundled Broad Twitter Corpus sample). ``out`` defaults to
    models/<level>.npz for a language model, models/<task>.npz otherwise."""
    if task != "lm":
        return _train_task(task, corpus, out, valid, callback, options)
    out = out if out is not None else f"models/{options.get('level', 'char')}.npz"
    if corpus is None:
        from .bundled import bundled
        corpus = bundled()
    paths = [corpus] if isinstance(corpus, (str, Path)) else list(corpus)
    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)}
    unknown = set(options) - model_keys - train_keys
    if unknown:
        raise ConfigError(f"Unknown option(s): {', '.join(sorted(unknown))}.")
    mcfg = ModelConfig(**{k: v for k, v in options.items() if k in model_keys})
    tcfg = TrainConfig(**{k: v for k, v in options.items() if k in train_keys})
    mcfg.validate()
    tcfg.validate()
    texts = [read_text(p) for p in paths]
    corpus_data = prepare_corpus(texts, tcfg, read_text(valid) if valid else None)
    model = Model.create(mcfg, corpus_data.vocab, np.random.default_rng(tcfg.seed))
    trainer = Trainer(model, corpus_data, tcfg, Path(out), callback)
    trainer.run_loop()
    return load_model(out)


def _train_task(task, corpus, out, valid, callback, options):
    """train() for a sentence task: build its data and model, then the one trainer."""
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
        raise ConfigError(f"charlm.train cannot train task {task!r} yet. Use lm or tag.")
    from .tasks.tag import TagTask, create_model, load_data
    data = load_data(corpus, valid, tcfg)
    model = create_model(mcfg, data, np.random.default_rng(tcfg.seed), lm_features)
    out = Path(out if out is not None else f"models/{task}.npz")
    Trainer(model, TagTask(data, tcfg, model), tcfg, out, callback).run_loop()
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
