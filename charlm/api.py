"""The Python API, mirroring the command line.

    import charlm
    lm = charlm.train(["corpus.txt"], out="models/char.npz", steps=2000)
    lm = charlm.load_model("models/char.npz")
    print(lm.sample(seed=1))
    print(lm.score("the apple and pear salad").log_prob)
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from . import checkpoint
from .errors import ConfigError, CorpusError
from .generate import sample as draw
from .model import Model, ModelConfig
from .score import Scored, score, score_many
from .train import TrainConfig, Trainer, evaluate, prepare_corpus


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
        prime (text), allow_unk, stop_at_eos."""
        rng = np.random.default_rng(seed)
        prime = options.pop("prime", None)
        prime_ids = self.vocab.encode(prime) if prime else None
        length = length or (200 if self.vocab.level == "char" else 50)
        s = draw(self.model, rng, length=length, prime_ids=prime_ids, **options)
        return (prime or "") + self.vocab.decode(s.ids)

    def score(self, text: str) -> Scored:
        """log P(text) as chained conditionals, including the final <EOS>."""
        return score(self.model, text)

    def score_many(self, texts, batch: int = 64) -> list[Scored]:
        return list(score_many(self.model, texts, batch))

    def log_probs(self, text: str) -> np.ndarray:
        """Natural-log conditional probability of each token of ``text`` and of <EOS>."""
        return score(self.model, text).log_probs

    def perplexity(self, text: str) -> float:
        """Per-token perplexity of ``text`` read as one stream (as validation does)."""
        ids = self.vocab.encode_sequences(text.split("\n"))
        nll, _ = evaluate(self.model, ids, m=1)
        return float(np.exp(nll))


def load_model(path: str | Path) -> LanguageModel:
    model, meta, _ = checkpoint.load(path)
    return LanguageModel(model, meta)


def train(corpus: list[str | Path] | str | Path, out: str | Path = "models/char.npz",
          valid: str | Path | None = None, callback=None, **options) -> LanguageModel:
    """Train a model on text files; options are the ``charlm train`` options in snake_case
    (model shape: cell, layers, hidden, embed, dropout, …; run: lr, batch, bptt, steps,
    epochs, time_budget, …)."""
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
