"""A trained language model, as the Python API and the command line use it.

    lm = charlm.load_model("models/char.npz")
    print(lm.sample(seed=1))
    print(lm.score("the apple and pear salad").log_prob)
    lm.evaluate(open("valid.txt").read())["perplexity"]
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import CorpusError
from ..nn.model import Model, ModelConfig
from ..nn.sampling import sample as draw
from ..tasks.lm import evaluate
from ..text.vocab import UNK_ID, reverse_lines, sequence_chunks, split_sequences
from .score import Scored, score, score_many


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

        Default: the very computation of training's validation
        (:func:`charlm.tasks.lm.evaluate`): the
        text cut into sequences by the model's own options (``prose``; its vocabulary
        lower-cases, tokenizes and normalises), one stream in the recorded ``eval_batch`` rows
        and ``bptt`` windows, the state carried across sequences, so the figure equals the
        validation loss training reported for the same file. ``per_line=True``: every
        sequence scored on its own from ``a<0> = 0`` (``batch`` at a time), as ``score``
        does; this is higher, since no sequence sees the one before it."""

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
