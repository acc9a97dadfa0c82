"""Minimal pairs: does the model prefer the grammatical sentence of two that differ minimally?

    "The cats, which ate, were full."   vs   "The cats, which ate, was full."

A pair is right when the good sentence gets the strictly higher total log-probability,
``log P(y<1>, …, y<T>, <EOS>)``, exactly as ``charlm score`` computes it (``score.score_many``;
an exact tie counts as wrong). The text goes through the model's own vocabulary, so a
lower-cased model lower-cases. A pair is out of vocabulary (OOV) when either sentence has a
token read as ``<UNK>``: such pairs are counted, and can be left out of the accuracy.

Letters: ``N`` pairs, ``B`` sentences per scoring batch.

Inputs: the JSON lines of BLiMP (fields ``sentence_good``, ``sentence_bad``, ``UID`` the
paradigm, ``linguistics_term`` the phenomenon), a folder of such files, or a two-column TSV
(good<TAB>bad per line).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ConfigError, CorpusError
from ..nn.model import Model
from ..text.bundled import bundled
from .score import score_many

BUNDLED_PAIRS = "blimp_agreement.jsonl"


@dataclass
class Pair:
    good: str
    bad: str
    uid: str = ""          # the paradigm (BLiMP's UID); "" for TSV and command-line pairs
    term: str = ""         # the phenomenon (BLiMP's linguistics_term)


@dataclass
class PairResult:
    pair: Pair
    log_prob_good: float
    log_prob_bad: float
    oov: int               # tokens read as <UNK>, both sentences together

    @property
    def diff(self) -> float:
        return self.log_prob_good - self.log_prob_bad

    @property
    def correct(self) -> bool:
        return self.log_prob_good > self.log_prob_bad

    def to_json(self) -> dict:
        p = self.pair
        return {"good": p.good, "bad": p.bad, "uid": p.uid, "phenomenon": p.term,
                "log_prob_good": self.log_prob_good, "log_prob_bad": self.log_prob_bad,
                "diff": self.diff, "correct": self.correct, "oov": self.oov}


# ------------------------------------------------------------------ readers
def read_pairs(path: Path | None = None) -> list[Pair]:
    """Pairs from a BLiMP ``.jsonl`` file, a folder of them (and of ``.tsv`` files), or a TSV
    file; None reads the bundled agreement subset."""
    if path is None:
        path = bundled(BUNDLED_PAIRS)
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.suffix in (".jsonl", ".json", ".tsv") and p.is_file())
        if not files:
            raise CorpusError(f"{path} holds no .jsonl or .tsv files. Give a BLiMP folder, "
                              "a .jsonl file or a TSV file of good<TAB>bad lines.")
        pairs = [p for f in files for p in read_pairs(f)]
    elif not path.exists():
        raise CorpusError(f"No file or folder at {path}. Check the path.")
    else:
        text = path.read_text(encoding="utf-8")
        pairs = read_jsonl(text, path) if path.suffix in (".jsonl", ".json") \
            else read_tsv(text, path)
    if not pairs:
        raise CorpusError(f"{path} holds no pairs. Give BLiMP JSON lines or good<TAB>bad lines.")
    return pairs


def read_jsonl(text: str, where: Path | str = "the input") -> list[Pair]:
    """BLiMP's JSON lines: one object per line with sentence_good and sentence_bad."""
    pairs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            pairs.append(Pair(str(d["sentence_good"]), str(d["sentence_bad"]),
                              str(d.get("UID", "")), str(d.get("linguistics_term", ""))))
        except (ValueError, KeyError, TypeError) as e:
            raise CorpusError(f"{where}, line {n}: not a BLiMP pair ({type(e).__name__}: {e}). "
                              "Each line must be a JSON object with sentence_good and "
                              "sentence_bad.") from None
    return pairs


def read_tsv(text: str, where: Path | str = "the input") -> list[Pair]:
    """Two tab-separated columns per line, good then bad; blank lines are skipped."""
    pairs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 2 or not cols[0].strip() or not cols[1].strip():
            raise CorpusError(f"{where}, line {n}: expected two tab-separated sentences "
                              f"(good<TAB>bad), found {len(cols)} column(s).")
        pairs.append(Pair(cols[0].strip(), cols[1].strip()))
    return pairs


# ------------------------------------------------------------------ scoring
def score_pairs(model: Model, pairs: list[Pair], batch: int = 256,
                on_batch: Callable[[int], None] | None = None) -> list[PairResult]:
    """Score every distinct sentence once, in batches of sentences of about the same length
    (sorted by token count, so each batch is padded little), and compare each pair.

    ``on_batch`` is called with the number of sentences after each batch.
    """
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1 (got {batch}).")
    texts = list(OrderedDict.fromkeys(s for p in pairs for s in (p.good, p.bad)))
    lengths = [len(model.vocab.encode(t)) for t in texts]
    order = np.argsort(lengths, kind="stable")
    ranked = [texts[i] for i in order]
    scored = {r.text: r for r in score_many(model, ranked, batch, on_batch=on_batch)}
    out = []
    for p in pairs:
        g, b = scored[p.good], scored[p.bad]
        out.append(PairResult(p, g.log_prob, b.log_prob, g.n_oov + b.n_oov))
    return out


def summarise(results: list[PairResult], skip_oov: bool = False) -> dict:
    """Accuracy overall, per phenomenon and per paradigm, each with its counts.

    Every group: ``pairs`` (all), ``oov`` (pairs with an <UNK>), ``scored`` (those counted:
    all, or all but the OOV ones with ``skip_oov``), ``correct`` and ``accuracy`` (None when
    nothing is scored)."""
    def group(rs):
        counted = [r for r in rs if not (skip_oov and r.oov)]
        right = sum(r.correct for r in counted)
        return {"pairs": len(rs), "oov": sum(1 for r in rs if r.oov), "scored": len(counted),
                "correct": right, "accuracy": right / len(counted) if counted else None}

    def by(key):
        groups: dict[str, list] = {}
        for r in results:
            k = key(r.pair)
            if k:
                groups.setdefault(k, []).append(r)
        return {k: group(v) for k, v in sorted(groups.items())}

    return {"overall": group(results), "skip_oov": skip_oov,
            "phenomena": by(lambda p: p.term), "paradigms": by(lambda p: p.uid)}
