"""The tagging task (many-to-many, T_x = T_y): a label for every token of a sentence.

Letters: ``T`` steps (the longest sentence of a batch), ``m`` sentences, ``K`` labels.

Model: word embedding -> L layers (any cell, optionally bidirectional) -> at every step
``ŷ<t> = softmax(W_y a<t> + b_y)`` over the K labels, with ``a<t> = [a→<t>, a←<t>]`` for a
BRNN. Sentences are whole (no truncation): right-padded into (T, m) batches bucketed by length,
the padding masked (see :mod:`charlm.nn.encoder`). The loss is the course's ``L = Σ_t L<t>``
over each sentence's real tokens, averaged over the batch, as for the language model.
Validation: entity F1 (CoNLL convention) for IOB labels, else token accuracy.
"""

from __future__ import annotations

import time
from collections import Counter
from itertools import repeat

import numpy as np

from ..errors import ConfigError, CorpusError
from ..nn.charwords import WordFeatures
from ..nn.encoder import length_mask
from ..nn.layers import log_softmax, softmax_xent
from ..nn.model import Model
from ..text import conll
from ..text.bundled import bundled
from ..text.files import Sources, read_text
from ..text.vocab import SPECIALS, UNK_ID, Vocab
from .metrics import is_iob, tagging_scores
from .sentences import Range, SentenceTask, n_batches, pad


# --------------------------------------------------------------- the maths
def tag_loss(model, X: np.ndarray, Y: np.ndarray, lengths: np.ndarray, rng=None, words=None):
    """L = Σ_t L<t> over real tokens, averaged over the m sentences.

    X, Y (T, m) padded token and label ids, lengths (m,); ``words``: the batch's
    :class:`~charlm.nn.charwords.WordBatch` when the model reads characters or LM features.
    Returns (L, summed NLL, tokens, cache for :meth:`Model.backward`); the gradient at padded
    positions is zero.
    """
    T, m = X.shape
    logits, _, cache = model.forward(X, None, rng, lengths, words)
    sel = np.flatnonzero(length_mask(lengths, T, bool).reshape(-1))   # position t·m + i
    L, nll, d = softmax_xent(logits[sel], Y.reshape(-1)[sel].astype(np.intp), m)
    dlogits = np.zeros_like(logits)
    dlogits[sel] = d
    return L, nll, len(sel), (cache, dlogits)


def tag_log_probs(model, X: np.ndarray, lengths: np.ndarray, words=None) -> np.ndarray:
    """log ŷ<t> over the labels: X (T, m), lengths (m,) -> (T, m, K) (padding: garbage).
    The forward-only path (:meth:`Model.encode_infer`): what :func:`tag_loss`'s forward pass
    gives without dropout, to round-off, with no cache."""
    h, _ = model.encode_infer(X, None, lengths, words)
    T, m, D = h.shape
    return log_softmax(model.output(h.reshape(T * m, D))).reshape(T, m, -1)


# ----------------------------------------------------------------- the data
def build_vocab(data: conll.Tagged, max_size: int, min_count: int, lowercase: bool) -> Vocab:
    """Word vocabulary of the training tokens as they are (the file is already tokenized):
    by frequency, ties by string; <UNK> for the rest."""
    counts = Counter(t.lower() if lowercase else t for s in data.tokens for t in s)
    for s in SPECIALS:
        counts.pop(s, None)
    ranked = sorted((t for t, c in counts.items() if c >= min_count),
                    key=lambda t: (-counts[t], t))[: max(max_size - len(SPECIALS), 0)]
    return Vocab([*SPECIALS, *ranked], "word", lowercase, unk_token=None)


def encode_tokens(vocab: Vocab, tokens: list[str]) -> np.ndarray:
    """Token ids, <UNK> for unknown tokens. With ``map`` the loop over the tokens runs in C,
    with no Python frame per token as a generator would have."""
    words = map(str.lower, tokens) if vocab.lowercase else tokens
    return np.fromiter(map(vocab.index.get, words, repeat(UNK_ID)), np.int64,
                       count=len(tokens))


class TagData:
    """Training (and validation) sentences as ids: the input of :class:`TagTask`."""

    def __init__(self, train: conll.Tagged, valid: conll.Tagged | None, vocab: Vocab,
                 labels: list[str]):
        self.train, self.valid, self.vocab, self.labels = train, valid, vocab, labels
        index = {lab: i for i, lab in enumerate(labels)}
        conll.check_labels(train, labels)
        if valid is not None:
            conll.check_labels(valid, labels)
        enc = lambda d: ([encode_tokens(vocab, s) for s in d.tokens],  # noqa: E731
                         [np.array([index[x] for x in s], np.int64) for s in d.labels])
        self.x, self.y = enc(train)
        self.valid_x, self.valid_y = enc(valid) if valid is not None else (None, None)


def prepare(train: conll.Tagged, valid: conll.Tagged | None, cfg) -> TagData:
    """Vocabulary and label set from the training file; validation without --valid: the last
    ``valid_fraction`` of the training sentences."""
    if valid is None and cfg.valid_fraction > 0:
        cut = int(round(len(train) * (1 - cfg.valid_fraction)))
        if cut < 1 or cut >= len(train):
            raise CorpusError(f"{train.name} has too few sentences ({len(train)}) to set aside "
                              "a validation part. Give --valid FILE or --valid-fraction 0.")
        valid = conll.Tagged(train.name, train.tokens[cut:], train.labels[cut:],
                             train.lines[cut:])
        train = conll.Tagged(train.name, train.tokens[:cut], train.labels[:cut],
                             train.lines[:cut])
    labels = conll.label_list(train)
    if len(labels) < 2:
        raise CorpusError(f"{train.name} has only one label ({labels[0]}): nothing to learn. "
                          "Give tagged data with at least two labels.")
    vocab = build_vocab(train, cfg.vocab_size, cfg.min_count, cfg.lowercase)
    return TagData(train, valid, vocab, labels)


def create_model(config, data: TagData, rng: np.random.Generator, lms=None):
    """A new tagger for the data: with ``config.char_hidden`` it reads each word's characters
    (the character vocabulary of the training words), with ``lms`` ([(Model, reverse)], the
    frozen character LMs of ``--lm-features``) the LMs' states; both travel in its model
    file."""
    features = None
    if config.char_hidden or lms:
        features = WordFeatures.build(data.train.tokens, config.char_hidden, lms)
        config.lm_features = features.lm_size
    return Model.create(config, data.vocab, rng, data.labels, features)


# ----------------------------------------------------------------- the task
class TagTask(SentenceTask):
    name = "tag"
    higher_is_better = True

    def epoch_line(self, cfg, labels, tokens: int, windows: int) -> str:
        """What an epoch is, said when training starts."""
        return (f"{len(labels)} labels, {tokens:,} tokens per epoch in {windows:,} batches of "
                f"up to {cfg.batch} sentences.")

    def __init__(self, data: TagData, cfg, model):
        if model.labels != data.labels:
            raise CorpusError("The model's labels differ from the data's. Train on the same "
                              "file the model was made for.")
        self.data, self.cfg = data, cfg
        self.batch_size, self.seed = cfg.batch, cfg.seed
        self.iob = is_iob(data.labels)
        self.metric = "valid_f1" if self.iob else "valid_accuracy"
        self.lengths = np.array([len(s) for s in data.x], np.int64)
        self.batches = Range(n_batches(len(data.x), cfg.batch))
        self.train_tokens = int(self.lengths.sum())
        self.tokens_per_epoch = self.train_tokens
        self.has_validation = data.valid_x is not None
        # frozen LM features: computed once per sentence, here, not at every step
        f = model.features
        self.lm = f.lm_states(data.train.tokens) if f is not None and f.lms else None
        self.valid_lm = (f.lm_states(data.valid.tokens)
                         if self.lm is not None and data.valid is not None else None)

    def words(self, model, idx) -> object:
        """The WordBatch of training sentences idx (None for a word-only model)."""
        if model.features is None:
            return None
        return model.features.batch([self.data.train.tokens[i] for i in idx],
                                    None if self.lm is None else [self.lm[i] for i in idx])

    def loss(self, model, epoch: int, k: int, rng):
        idx = self.batch_indices(epoch, k)
        X, lengths = pad([self.data.x[i] for i in idx])
        Y, _ = pad([self.data.y[i] for i in idx])
        return tag_loss(model, X, Y, lengths, rng, self.words(model, idx))

    def backward(self, model, cache) -> dict:
        return model.backward(cache)[0]

    def validate(self, model) -> dict:
        t0 = time.perf_counter()
        pred, nll, n = predict(model, self.data.valid_x, self.data.valid_y, self.cfg.eval_batch,
                               self.data.valid.tokens, self.valid_lm)
        labels = self.data.labels
        s = tagging_scores([[labels[i] for i in y] for y in self.data.valid_y],
                           [[labels[i] for i in p] for p in pred], self.iob)
        rec = {"valid_loss": nll / n, "valid_tokens": n, "valid_accuracy": s["accuracy"]}
        if self.iob:
            rec["valid_f1"] = s["entities"]["f1"]
            rec["valid_precision"] = s["entities"]["precision"]
            rec["valid_recall"] = s["entities"]["recall"]
        rec["eval_seconds"] = time.perf_counter() - t0
        return rec


    def progress_sample(self, model, rng) -> str:
        xs = self.data.valid_x or self.data.x
        toks = (self.data.valid or self.data.train).tokens
        i = int(rng.integers(len(xs)))
        p = predict(model, [xs[i]], tokens=[toks[i]])[0][0]
        return " ".join(t if model.labels[j] == "O" else f"[{t}]{model.labels[j]}"
                        for t, j in zip(toks[i], p))


def predict(model, xs: list[np.ndarray], ys: list[np.ndarray] | None = None, batch: int = 64,
            tokens: list[list[str]] | None = None, lm: list[np.ndarray] | None = None):
    """Most probable label ids per sentence (and, with gold ``ys``, the summed NLL and the
    number of tokens), in batches of similar lengths. A model with character words or LM
    features also needs the sentences' ``tokens`` (and takes their LM features ``lm`` when
    already computed)."""
    order = np.argsort([len(x) for x in xs], kind="stable")
    pred: list = [None] * len(xs)
    nll, n = 0.0, 0
    for s in range(0, len(xs), batch):
        idx = order[s:s + batch]
        X, lengths = pad([xs[i] for i in idx])
        words = None if model.features is None else model.features.batch(
            [tokens[i] for i in idx], None if lm is None else [lm[i] for i in idx])
        lp = tag_log_probs(model, X, lengths, words)
        best = lp.argmax(axis=2)
        for j, i in enumerate(idx):
            pred[i] = best[:lengths[j], j]
            if ys is not None:
                nll -= float(lp[np.arange(lengths[j]), j, ys[i]].sum())
                n += int(lengths[j])
    return pred, nll, n


# ------------------------------------------------------------ the run set-up
# Chosen by measurement (docs/benchmarks.md, "Per-task defaults"): one core, 60 s budgets on
# BTC and WNUT-17; bidirectional layers and character words are what make tagging work.
DEFAULTS = {"level": "word", "bidirectional": True, "embed": 64, "hidden": 128, "layers": 1,
            "dropout": 0.3, "lr": 3e-3, "batch": 32, "min_count": 1, "char_embed": 25,
            "char_hidden": 25, "eval_every": 100}
# Options that apply to the tagger only (its words' characters; with the classifier, the LM
# features); it shows a tagged validation sentence every --sample-every steps, as the
# language model shows a sample.
OPTIONS = ("char_embed", "char_hidden", "lm_features", "sample_every")
DEFAULT_TAG_CORPUS = "btc-train.conll"
DEFAULT_TAG_VALID = "btc-dev.conll"
DEFAULT_NOTICE = ("Training on the bundled corpus: the Broad Twitter Corpus (6,338 tweets; "
                  "its dev part validates).")


def complete(options: dict, given: dict) -> dict:
    """The defaults made to fit what was given: ``--char-hidden 0`` or ``--char-embed 0``
    turns the default character words off (both sizes 0)."""
    if options.get("char_hidden") == 0 or options.get("char_embed") == 0:
        if not (given.get("char_hidden") or given.get("char_embed")):
            options = {**options, "char_embed": 0, "char_hidden": 0}
    return options


def check(mcfg, tcfg) -> None:
    """What a tagger's options must be, beyond each config's own checks."""
    if tcfg.level != "word":
        raise ConfigError("A tagger labels words: --task tag reads word tokens. Drop "
                          "--level char (--char-embed adds each word's characters).")


def default_corpus() -> tuple[list, object]:
    """The bundled Broad Twitter Corpus sample and its dev part."""
    return [bundled(DEFAULT_TAG_CORPUS)], bundled(DEFAULT_TAG_VALID)


def read_data(sources, cfg, known=None) -> TagData:
    """TagData from one CoNLL file's text and an optional validation file's."""
    if len(sources.files) != 1:
        raise CorpusError("Tagging trains on one CoNLL file; join several into one first.")
    (name, text), = sources.files
    valid = conll.parse(sources.valid[1], sources.valid[0]) if sources.valid else None
    return prepare(conll.parse(text, name), valid, cfg)


def same_data(model, data: TagData) -> bool:
    return data.vocab.tokens == model.vocab.tokens and data.labels == model.labels


def make_task(data: TagData, cfg, model, reducer=None) -> "TagTask":
    return TagTask(data, cfg, model)


def load_data(corpus, valid, cfg, encoding: str = "utf-8") -> TagData:
    """TagData from a CoNLL file (None: the bundled Broad Twitter Corpus sample) and an
    optional validation file (for scripts; ``charlm train`` reads them in its run set-up)."""
    if isinstance(corpus, (list, tuple)):
        corpus = corpus[0] if len(corpus) == 1 else corpus
    if corpus is None:
        (corpus,), default_valid = default_corpus()
        valid = default_valid if valid is None else valid
    files = corpus if isinstance(corpus, (list, tuple)) else [corpus]
    sources = Sources([(str(p), read_text(p, encoding)) for p in files],
                      (str(valid), read_text(valid, encoding)) if valid is not None else None)
    return read_data(sources, cfg)
