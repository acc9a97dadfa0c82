"""What a tagger sees of a word besides its embedding: its characters (a small BRNN over them)
and charlm's own frozen character language models. Character-level models have no
unknown-word problem: a word never seen in training still has characters.

Letters: ``T`` steps (words) of a padded batch of sentences, ``m`` sentences, ``n_u`` unique
words in the batch, ``T_c`` characters of the longest of them, ``n_ce`` character embedding
size, ``n_c`` character hidden size, ``n_f`` language-model feature size (the summed top-layer
sizes of the feature LMs).

**Character words** (Lample et al. 2016). Each unique word of a batch is a "sentence" of
characters; the words are right-padded into ids (T_c, n_u) and read by one bidirectional layer
of :mod:`charlm.nn.encoder` (any cell), the same masked stack the sentences go through::

    r(w) = [a→<len(w)>, a←<1>]                         (n_u, 2 n_c)

the forward direction's state after the word's last character and the backward direction's
after its first. (A word longer than 20 characters is read as its two ends:
:data:`MAX_WORD_CHARS`.) ``x<t> = [E^T o<t>, r(w<t>), f<t>]`` is then the first tagger layer's
input.
Parameters ``C.E`` (characters, n_ce) and ``C.L1.*``, ``C.L1r.*``; the character vocabulary
(a char-level :class:`~charlm.text.vocab.Vocab`, ``<UNK>`` for characters training never showed)
is built from the training words.

**Language-model features** (Akbik et al. 2018). A sentence's text is its words joined by
single spaces. A forward character LM reads it from ``<EOS>`` (as in scoring, a<0> = 0); the
feature of a word is its top-layer state after the word's last character. A backward LM
(trained with ``charlm train --reverse``) reads the reversed text; its feature is the state
after the word's first character. The LMs are frozen: their states are computed once per
sentence by the forward-only pass (:meth:`~charlm.nn.model.Model.infer`: no dropout, no
cache), and nothing is backpropagated into them. The LM
files travel inside the tagger's model file: their params under ``lm/<i>/param/<name>``, their
config, vocabulary and direction in the meta entry's ``features``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..text.vocab import EOS_ID, UNK_ID, Vocab
from . import encoder
from .layers import embed_backward, embed_forward


# ---------------------------------------------------------------- the maths
def char_config(config):
    """The character network's shape: one bidirectional layer of the tagger's cell."""
    return replace(config, layers=1, hidden=config.char_hidden, embed=config.char_embed,
                   bidirectional=True, dropout=0.0, char_embed=0, char_hidden=0,
                   lm_features=0)


def char_params(params: dict) -> dict:
    """The character network's parameters under the encoder's own names (E, L1.*, L1r.*)."""
    return {k[2:]: v for k, v in params.items() if k.startswith("C.")}


def init_char_params(config, n_chars: int, rng: np.random.Generator, dt) -> dict:
    """Fresh ``C.*`` parameters: N(0, 1) character embedding, the encoder's init for the rest."""
    cc = char_config(config)
    p = {"E": rng.standard_normal((n_chars, cc.embed)).astype(dt)}
    p.update(encoder.init_params(cc, cc.embed, rng, dt))
    return {"C." + k: v for k, v in p.items()}


def char_forward(params: dict, config, chars: np.ndarray, lengths: np.ndarray,
                 train: bool = True):
    """r(w) for every word: chars (T_c, n_u) padded ids, lengths (n_u,) -> (n_u, 2 n_c) and the
    cache for :func:`char_backward` (``train`` False: the encoder's forward-only pass, and
    no cache)."""
    cc, p = char_config(config), char_params(params)
    x = embed_forward(chars, p["E"])
    if train:
        h, _, cache = encoder.forward(p, cc, x, None, lengths, None)
    else:
        (h, _), cache = encoder.infer(p, cc, x, None, lengths), None
    n, cols = cc.hidden, np.arange(chars.shape[1])
    # forward half after the last character, backward half (un-flipped) after the first
    r = np.concatenate([h[lengths - 1, cols, :n], h[0, :, n:]], axis=1)
    return r, (chars, lengths, h.shape, cache) if train else None


def char_backward(dr: np.ndarray, cache, params: dict, config) -> dict:
    """dr (n_u, 2 n_c) -> gradients of the ``C.*`` parameters."""
    chars, lengths, shape, enc_cache = cache
    cc, p = char_config(config), char_params(params)
    n, cols = cc.hidden, np.arange(chars.shape[1])
    dh = np.zeros(shape, dtype=dr.dtype)
    dh[lengths - 1, cols, :n] = dr[:, :n]
    dh[0, :, n:] += dr[:, n:]
    dx, _, g = encoder.backward(dh, enc_cache, p, cc)
    g["E"] = embed_backward(chars, dx, p["E"].shape[0])
    return {"C." + k: v for k, v in g.items()}


class WordBatch:
    """The extra input of one padded batch of sentences: the batch's unique words as padded
    character ids ``chars`` (T_c, n_u) with ``char_lengths`` (n_u,), ``inverse`` (T, m) the
    unique word at each position (0 at padding), and ``lm`` (T, m, n_f) or None."""

    def __init__(self, chars, char_lengths, inverse, lm):
        self.chars, self.char_lengths, self.inverse, self.lm = chars, char_lengths, inverse, lm


def word_inputs(params: dict, config, words: WordBatch, lengths: np.ndarray,
                train: bool = True):
    """The columns ``[r(w<t>), f<t>]`` that follow the embedding in x<t>: (T, m, 2 n_c + n_f),
    and the cache for :func:`word_inputs_backward` (None when not ``train``: the character
    words then take the forward-only path)."""
    parts, rcache = [], None
    if config.char_hidden:
        r, rcache = char_forward(params, config, words.chars, words.char_lengths, train)
        parts.append(r[words.inverse])
    if config.lm_features:
        parts.append(words.lm)
    return np.concatenate(parts, axis=2), (words, lengths, rcache) if train else None


def word_inputs_backward(dx: np.ndarray, cache, params: dict, config) -> dict:
    """dx (T, m, 2 n_c + n_f) of the extra columns -> gradients of the ``C.*`` parameters
    (the LM features are frozen)."""
    words, lengths, rcache = cache
    if not config.char_hidden:
        return {}
    T = dx.shape[0]
    dxc = dx[..., :2 * config.char_hidden] * encoder.length_mask(lengths, T, dx.dtype)
    # dr(w) = Σ of dx<t> over the positions where w occurs (a word read once, used many times)
    dr = embed_backward(words.inverse, dxc, len(words.char_lengths))
    return char_backward(dr, rcache, params, config)


# ------------------------------------------------------------ the features
MAX_WORD_CHARS = 20
"""A longer word (a URL, a run of hashtags) is read as its first and last 10 characters. The
character BRNN takes as many steps as the batch's longest word: in WNUT-17 training batches
that is 26 characters at the median and up to 121, while 99 % of words have at most 22."""


class WordFeatures:
    """The character vocabulary and the frozen feature LMs of one tagger: builds each batch's
    :class:`WordBatch` from the sentences' words."""

    def __init__(self, chars: Vocab | None, lms: list | None = None):
        self.chars = chars
        self.lms = list(lms or [])       # [(Model, reverse: bool), ...]

    @property
    def lm_size(self) -> int:
        return sum(lm.config.hidden for lm, _ in self.lms)

    # ------------------------------------------------------------- building
    @classmethod
    def build(cls, sentences: list[list[str]], char_hidden: int, lms=None) -> "WordFeatures":
        """The character vocabulary of the training words (when char_hidden) and the frozen
        LMs ``lms``: [(Model, reverse)] (``charlm.training.checkpoint.load_lm`` reads them)."""
        chars = Vocab.build((w for s in sentences for w in s), "char", unk_token=None) \
            if char_hidden else None
        return cls(chars, list(lms or []))

    def batch(self, sentences: list[list[str]], lm: list[np.ndarray] | None = None,
              dtype=np.float32) -> WordBatch:
        """The WordBatch of sentences (their words, padded to the longest); ``lm``: each
        sentence's LM features if already computed (else computed now)."""
        T, m = max(len(s) for s in sentences), len(sentences)
        inverse = np.zeros((T, m), np.int64)
        index: dict[str, int] = {}
        for j, s in enumerate(sentences):
            inverse[:len(s), j] = [index.setdefault(w, len(index)) for w in s]
        chars = lens = None
        if self.chars is not None:
            chars, lens = self.encode_words(list(index))
        feats = None
        if self.lms:
            lm = lm if lm is not None else self.lm_states(sentences)
            feats = np.zeros((T, m, self.lm_size), dtype)
            for j, f in enumerate(lm):
                feats[:len(f), j] = f
        return WordBatch(chars, lens, inverse, feats)

    def encode_words(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Padded character ids (T_c, n_u) and lengths (n_u,), in one encoding pass over the
        words joined by line breaks (an empty word reads as one unknown character, a word
        longer than MAX_WORD_CHARS as its two ends)."""
        half = MAX_WORD_CHARS // 2
        words = [(w if len(w) <= MAX_WORD_CHARS else w[:half] + w[-half:]).replace("\n", " ")
                 or "\ufffd" for w in words]
        ids = self.chars.encode("\n".join(words)).astype(np.int64)
        lens = np.array([len(w) for w in words], np.int64)
        starts = np.concatenate([[0], np.cumsum(lens + 1)[:-1]])
        t = np.arange(lens.max())[:, None]
        pos = np.minimum(starts[None, :] + t, len(ids) - 1)
        return np.where(t < lens[None, :], ids[pos], UNK_ID), lens

    def lm_states(self, sentences: list[list[str]], batch: int = 256) -> list[np.ndarray]:
        """Each sentence's LM features (words, n_f), float32: the LMs run over the sentences'
        texts once, in batches of similar lengths (little padding: a batch takes as many
        steps as its longest text)."""
        out: list = [None] * len(sentences)
        order = np.argsort([sum(len(w) + 1 for w in s) for s in sentences], kind="stable")
        for a in range(0, len(sentences), batch):
            idx = order[a:a + batch]
            chunk = [sentences[i] for i in idx]
            cols = [lm_word_states(lm, rev, chunk) for lm, rev in self.lms]
            for j, i in enumerate(idx):
                out[i] = np.concatenate([c[j] for c in cols], axis=1)
        return out

    # ---------------------------------------------------------- the model file
    def meta(self) -> dict:
        return {"chars": self.chars.to_json() if self.chars is not None else None,
                "lms": [{"config": lm.config.to_json(), "vocab": lm.vocab.to_json(),
                         "reverse": rev} for lm, rev in self.lms]}

    def arrays(self) -> dict:
        return {f"lm/{i}/param/{k}": v for i, (lm, _) in enumerate(self.lms)
                for k, v in lm.params.items()}


def lm_word_states(lm, reverse: bool, sentences: list[list[str]]) -> list[np.ndarray]:
    """One LM's top-layer state at each word of each sentence: [(words, n_a)] float32.

    Text ``w1 w2 … wn`` (reversed for a backward LM) is read after ``<EOS>``, so the state
    after text character i is h<i+1>. Forward: after the word's last character (end - 1).
    Backward: after its first character, which the reversed text has at len - 1 - start.
    """
    texts, spans = [], []
    for s in sentences:
        lens = np.array([len(w) for w in s], np.int64)
        start = np.concatenate([[0], np.cumsum(lens + 1)[:-1]])
        text = " ".join(s)
        texts.append(text[::-1] if reverse else text)
        spans.append(len(text) - start if reverse else start + lens)
    seqs = [lm.vocab.encode(t.replace("\n", " ")).astype(np.int64) for t in texts]
    lengths = np.array([len(q) + 1 for q in seqs], np.int64)
    X = np.full((int(lengths.max()), len(seqs)), EOS_ID, np.int64)
    for j, q in enumerate(seqs):
        X[1:len(q) + 1, j] = q
    # frozen: the forward-only pass. Without lengths the padding after a text is read too,
    # but it comes after every span, so it cannot change the states gathered there.
    h, _ = lm.infer(X, lm.zero_state(len(seqs)))
    return [h[spans[j], j].astype(np.float32) for j in range(len(seqs))]
