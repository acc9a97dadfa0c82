"""The language model's data: a corpus read into a vocabulary and token-id streams, and the
streams cut into (T, m) training windows for truncated backpropagation through time.

Letters: ``N`` tokens in the stream, ``m`` rows (the batch), ``n = N // m`` targets per row,
``T`` steps per window.

The stream is split into ``m`` contiguous rows, each read left to right, so the hidden state at
the end of one window is the right state to start the next window of the same row with. A
stream position's input is the token before it; the first token of a row is predicted from the
token that ends the row before it (from ``<EOS>`` for row 0), so every token of the stream is a
target exactly once per epoch. The last ``N mod m`` tokens (fewer than ``m``) are left out.

Windows are time-major views into one ``(n + 1, m)`` grid of small unsigned integers: memory is
a few bytes per token, never a one-hot matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CorpusError
from ..text.vocab import EOS_ID, Vocab, reverse_lines, sequence_chunks


@dataclass
class Batches:
    """The grid of one stream: ``grid[j, r]`` is the input at step ``j`` of row ``r``."""

    grid: np.ndarray  # (n + 1, m) unsigned ints
    bptt: int

    @classmethod
    def from_stream(cls, ids: np.ndarray, m: int, bptt: int) -> "Batches":
        """Lay ``ids`` (N,) out as ``m`` rows; ``bptt`` is the window length T."""
        n = len(ids) // m
        s = np.empty(m * n + 1, dtype=ids.dtype)
        s[0] = EOS_ID
        s[1:] = ids[: m * n]
        # Row r covers stream positions [r*n, (r+1)*n]: it shares its first input with the
        # previous row's last target. Built with a strided view, then copied time-major.
        rows = np.lib.stride_tricks.as_strided(
            s, shape=(m, n + 1), strides=(n * s.itemsize, s.itemsize), writeable=False)
        return cls(np.ascontiguousarray(rows.T), bptt)

    @property
    def m(self) -> int:
        return self.grid.shape[1]

    @property
    def steps_per_row(self) -> int:
        """Targets per row, n."""
        return self.grid.shape[0] - 1

    @property
    def tokens(self) -> int:
        """Targets per epoch, m * n."""
        return self.steps_per_row * self.m

    def __len__(self) -> int:
        """Windows per epoch (the last one may be shorter than T)."""
        return -(-self.steps_per_row // self.bptt)

    def rows(self, lo: int, hi: int) -> "Batches":
        """Rows [lo, hi) of every window (one process's share of the batch): the same
        windows, the same number of them, each (T, hi - lo)."""
        return Batches(np.ascontiguousarray(self.grid[:, lo:hi]), self.bptt)

    def window(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs X and targets Y of window ``k``, both (T, m); Y[t] is X[t + 1]."""
        a = k * self.bptt
        b = min(a + self.bptt, self.steps_per_row)
        return self.grid[a:b], self.grid[a + 1: b + 1]


# ------------------------------------------------------------- the corpus
@dataclass
class Corpus:
    vocab: Vocab
    train_ids: np.ndarray
    valid_ids: np.ndarray | None


def split_validation(text: str, fraction: float) -> tuple[str, str]:
    """The last ``fraction`` of the text as validation, cut at the first line break after
    that point so that no line is split."""
    cut = int(len(text) * (1.0 - fraction))
    nl = text.find("\n", cut)
    cut = len(text) if nl < 0 else nl + 1
    return text[:cut], text[cut:]


def prepare_corpus(texts: list[str], cfg, valid_text: str | None = None,
                   vocab: Vocab | None = None) -> Corpus:
    """Vocabulary from the training text only (or ``vocab`` as given, for --init-from);
    validation tokens outside it become <UNK>."""
    text = "\n".join(t if t.endswith("\n") or not t else t + "\n" for t in texts)
    if cfg.reverse:   # a backward LM: each line's characters reversed before tokenising
        text, valid_text = reverse_lines(text), valid_text and reverse_lines(valid_text)
    if not text.strip():
        raise CorpusError("The corpus is empty (or only whitespace). Give a text file with "
                          "some content.")
    if valid_text is None and cfg.valid_fraction > 0:
        text, valid_text = split_validation(text, cfg.valid_fraction)
        if not valid_text.strip():
            raise CorpusError("The corpus is too small to set aside a validation part. "
                              "Use a larger corpus, --valid FILE, or --valid-fraction 0.")
    seqs = lambda t: sequence_chunks(t, prose=cfg.prose, level=cfg.level)  # noqa: E731
    if vocab is None:
        vocab = Vocab.build_from_chunks(seqs(text), cfg.level, max_size=cfg.vocab_size,
                                        min_count=cfg.min_count, lowercase=cfg.lowercase,
                                        unk_token=cfg.unk_token, tokenizer=cfg.tokenizer)
    # One token besides <EOS> and <UNK> (a corpus like "aaaa\naa\n") is degenerate but a
    # well-defined language model: it still learns where sequences end. It trains (the command
    # line warns); a vocabulary of only <EOS> and <UNK> has nothing to learn and is refused.
    if len(vocab) <= 2:
        raise CorpusError(f"No token of the corpus is kept in the vocabulary (each must occur "
                          f"--min-count {cfg.min_count} times). Use a larger or more varied "
                          "corpus, or a lower --min-count.")
    train_ids = vocab.encode_chunks(seqs(text))
    valid_ids = vocab.encode_chunks(seqs(valid_text)) if valid_text is not None else None
    if len(train_ids) < cfg.batch * max(cfg.bptt, 2):
        raise CorpusError(f"The training text has {len(train_ids)} tokens, too few for one "
                          f"window of --batch {cfg.batch} × --bptt {cfg.bptt} "
                          f"(= {cfg.batch * cfg.bptt}). Use a larger corpus, or a smaller "
                          "--batch or --bptt.")
    if valid_ids is not None and len(valid_ids) < cfg.eval_batch:
        raise CorpusError(f"The validation text has {len(valid_ids)} tokens, fewer than "
                          f"--eval-batch {cfg.eval_batch}. Give more validation text.")
    return Corpus(vocab, train_ids, valid_ids)
