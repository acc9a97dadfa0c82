"""The classification task (many-to-one): its data, its head and what the trainer needs.

Letters: ``N`` examples, ``K`` classes, ``T`` steps of the longest example in a batch, ``m``
examples in a batch, ``D`` the size of the top layer's output (``n_a``, ``2 n_a`` for a BRNN).

The model: embedding -> the shared layer stack (:mod:`charlm.nn.encoder`, masked, optionally
bidirectional) -> one pooled vector ``p`` (m, D) per example (:mod:`charlm.nn.pooling`) ->
``ŷ = softmax(W_y p + b_y)`` with ``W_y`` (K, D). The loss is the cross-entropy of each
example's class, averaged over the batch.

With ``--lm-features`` (word level) each word's input also holds the states of charlm's frozen
character language models at that word, as a tagger's does (:mod:`charlm.nn.charwords`): the
words are the vocabulary's tokens of the text, case kept.

The data formats are read by :mod:`charlm.text.labelled`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, CorpusError
from ..nn.charwords import WordFeatures
from ..nn.layers import log_softmax, softmax_xent
from ..nn.model import Model
from ..nn.pooling import pool_backward, pool_forward
from ..text.bundled import bundled
from ..text.labelled import Examples, label_set, parse_class_file, parse_labelled
from ..text.vocab import SPECIALS, UNK_ID, Vocab
from .metrics import classification_report, confusion_matrix, macro_f1
from .sentences import Range, SentenceTask, n_batches, pad


# ------------------------------------------------------------ label set, ids
def label_ids(labels: list[str], classes: list[str], where: list[str] | None = None,
              ) -> np.ndarray:
    """(N,) class ids; a label outside ``classes`` is a CorpusError naming its line."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.empty(len(labels), dtype=np.int64)
    for i, lab in enumerate(labels):
        j = index.get(lab)
        if j is None:
            at = f"{where[i]}: " if where else ""
            raise CorpusError(f"{at}the label {lab!r} is not one the model was trained on "
                              f"({', '.join(classes)}). Use the same label set as the training "
                              "data.")
        out[i] = j
    return out


def build_vocab(texts: list[str], level: str, min_count: int = 1, lowercase: bool = False,
                max_size: int | None = None, tokenizer: str = "words") -> Vocab:
    """The vocabulary of the training texts (``<UNK>`` for the rest; no corpus unknown
    marker: ``<unk>`` in a review is just text)."""
    return Vocab.build(texts, level, max_size=max_size, min_count=min_count,
                       lowercase=lowercase, unk_token=None, tokenizer=tokenizer)


def encode_texts(vocab: Vocab, texts: list[str]) -> list[np.ndarray]:
    """Each text's token ids. A text with no token at all (only spaces, at word level only
    symbols the tokenizer drops) becomes one ``<UNK>``: every example has at least one step."""
    out = []
    for t in texts:
        ids = vocab.encode(t)
        out.append(ids if len(ids) else np.array([UNK_ID], dtype=vocab.dtype))
    return out


def text_words(vocab: Vocab, texts: list[str]) -> list[list[str]]:
    """Each text's words as ``vocab`` splits them (one per id of :func:`encode_texts`), with
    their case kept: what the LM features of ``--lm-features`` read. A text with no token is
    one empty word, as it is one ``<UNK>``."""
    keep_case = Vocab(list(SPECIALS), "word", False, vocab.unk_token, vocab.tokenizer,
                      vocab.normalize)
    out = []
    for t in texts:
        words = keep_case.tokenize(t)
        if len(words) != len(vocab.tokenize(t)):   # lower-casing split a character
            words = vocab.tokenize(t)
        out.append(words or [""])
    return out


# --------------------------------------------------------------- splits, folds
def stratified_folds(y: np.ndarray, K: int, seed: int) -> list[np.ndarray]:
    """K disjoint index sets covering 0..N-1, each class spread evenly over them: the examples
    of each class are shuffled (seeded) and dealt round-robin, continuing the deal from class
    to class so the fold sizes differ by at most one."""
    if K < 2:
        raise ConfigError(f"--folds must be at least 2 (got {K}).")
    counts = Counter(y.tolist())
    if len(y) < K:
        raise CorpusError(f"{len(y)} examples cannot be cut into {K} folds. Use fewer folds.")
    rng = np.random.default_rng([seed, 3])
    folds: list[list[int]] = [[] for _ in range(K)]
    k = 0
    for c in sorted(counts):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        for i in idx:
            folds[k].append(int(i))
            k = (k + 1) % K
    return [np.array(sorted(f), dtype=np.int64) for f in folds]


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, valid) indices: about ``fraction`` of each class held out, seeded. Every class
    keeps at least one training example."""
    if not 0 < fraction < 1:
        raise ConfigError(f"--valid-fraction must be in (0, 1) here (got {fraction}).")
    rng = np.random.default_rng([seed, 4])
    train, valid = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        n_valid = min(int(round(fraction * len(idx))), len(idx) - 1)
        valid.append(idx[:n_valid])
        train.append(idx[n_valid:])
    tr, va = np.sort(np.concatenate(train)), np.sort(np.concatenate(valid))
    if len(va) == 0:
        raise CorpusError(f"{len(y)} examples are too few to set aside a validation part. "
                          "Give --valid FILE, or more examples.")
    return tr, va


# ------------------------------------------------------------- the head
def forward(model, X: np.ndarray, lengths: np.ndarray, rng: np.random.Generator | None = None,
            words=None):
    """ŷ's logits for a padded batch: embedding -> layers -> pooled (m, D) -> W_y p + b_y.

    X (T, m) ids, lengths (m,); ``rng`` turns dropout on; ``words``: the batch's
    :class:`~charlm.nn.charwords.WordBatch` for a model with LM features. Returns logits
    (m, K) and the cache for :func:`backward`.
    """
    h, _, enc_cache = model.encode(X, None, lengths, rng, words)
    logits, pool_cache, p = _head(model, h, lengths)
    return logits, (enc_cache, pool_cache, p)


def infer(model, X: np.ndarray, lengths: np.ndarray, words=None) -> np.ndarray:
    """The logits (m, K) of :func:`forward` without dropout, on the forward-only path
    (:meth:`Model.encode_infer`: no cache)."""
    h, _ = model.encode_infer(X, None, lengths, words)
    return _head(model, h, lengths)[0]


def _head(model, h: np.ndarray, lengths: np.ndarray):
    """Pooling and the output layer: h (T, m, D) -> logits (m, K), the pooling's cache, p."""
    cfg = model.config
    p, pool_cache = pool_forward(h, lengths, cfg.pool, cfg.bidirectional)
    return model.output(p), pool_cache, p


def loss(model, X: np.ndarray, lengths: np.ndarray, y: np.ndarray,
         rng: np.random.Generator | None = None, words=None):
    """Cross-entropy of the gold classes y (m,), averaged over the batch.

    Returns (L, summed NLL, logits (m, K), cache for :func:`backward`)."""
    logits, cache = forward(model, X, lengths, rng, words)
    L, nll, dlogits = softmax_xent(logits, np.asarray(y, dtype=np.intp), len(y))
    return L, nll, logits, (cache, dlogits)


def backward(model, loss_cache) -> dict[str, np.ndarray]:
    """Gradients of every parameter (same keys as ``model.params``)."""
    (enc_cache, pool_cache, p), dlogits = loss_cache
    grads = {"W_y": dlogits.T @ p, "b_y": dlogits.sum(axis=0)}
    dh = pool_backward(dlogits @ model.params["W_y"], pool_cache)
    grads, _ = model.encode_backward(dh, enc_cache, grads)
    return grads


def predict_proba(model, seqs: list[np.ndarray], m: int = 64,
                  words: list[list[str]] | None = None,
                  lm: list[np.ndarray] | None = None) -> np.ndarray:
    """P(class | text) for every sequence: (N, K), in the order given. Batches are made of
    sequences of similar length (less padding); the result does not depend on them. A model
    with LM features also needs each text's ``words`` (:func:`text_words`), and takes their
    LM states ``lm`` when already computed."""
    K = model.params["b_y"].shape[0]
    out = np.empty((len(seqs), K), dtype=np.float64)
    order = np.argsort([len(s) for s in seqs], kind="stable")
    for s in range(0, len(order), m):
        index = order[s: s + m]
        X, lengths = pad([seqs[i] for i in index])
        logits = infer(model, X, lengths, batch_words(model, words, lm, index))
        out[index] = np.exp(log_softmax(logits.astype(np.float64)))
    return out


def batch_words(model, words, lm, index):
    """The WordBatch of examples ``index`` (None for a model without LM features)."""
    if model.features is None:
        return None
    return model.features.batch([words[i] for i in index],
                                None if lm is None else [lm[i] for i in index])


def predict_texts(model, texts: list[str], m: int = 64) -> np.ndarray:
    """:func:`predict_proba` of texts (N, K)."""
    words = text_words(model.vocab, texts) if model.features is not None else None
    return predict_proba(model, encode_texts(model.vocab, texts), m, words)


def evaluate_examples(model, examples: Examples, batch: int = 64) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1, the confusion matrix and the mean
    NLL of the gold classes (``nll``, nats per example, as validation's loss) of a classifier
    on labelled examples."""
    gold = label_ids(examples.labels, list(model.labels), examples.where)
    P = predict_texts(model, examples.texts, batch)
    report = classification_report(gold, P.argmax(axis=1), list(model.labels))
    nll = -np.log(np.maximum(P[np.arange(len(gold)), gold], 1e-300))
    report["nll"] = float(nll.mean()) if len(gold) else 0.0
    return report


# ------------------------------------------------------------- the task
class ClassifyTask(SentenceTask):
    """What the trainer trains for ``--task classify`` (the contract: :mod:`charlm.tasks`).

    Batches: the training examples shuffled each epoch with the run's seed and bucketed by
    length (:func:`charlm.tasks.epoch_batches`), padded, masked. The loss is the cross-entropy
    of each example's class averaged over the batch; a "token" of the trainer's counts is one
    example here. Validation: accuracy on the validation examples (higher is better), with
    their mean loss and macro-F1 beside it.
    """

    name = "classify"
    metric = "valid_accuracy"
    higher_is_better = True
    unit = "example"

    def epoch_line(self, cfg, labels, tokens: int, windows: int) -> str:
        """What an epoch is, said when training starts."""
        return (f"{len(labels)} classes, {tokens:,} examples per epoch in {windows:,} "
                f"batches of up to {cfg.batch}.")

    def __init__(self, seqs: list[np.ndarray], y: np.ndarray, batch: int, seed: int,
                 valid: tuple[list[np.ndarray], np.ndarray] | None = None, eval_batch: int = 64,
                 features=None, words=None, valid_words=None):
        if not len(seqs):
            raise CorpusError("No training examples. Give a labelled file with some lines.")
        self.seqs, self.y = seqs, np.asarray(y, dtype=np.int64)
        # frozen LM features (``features``: the model's): computed once per text, here
        self.words, self.valid_words = words, valid_words
        has_lms = features is not None and features.lms
        self.lm = features.lm_states(words) if has_lms else None
        self.valid_lm = (features.lm_states(valid_words)
                         if has_lms and valid_words is not None else None)
        self.lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        self.batch_size, self.seed, self.eval_batch = batch, seed, eval_batch
        self.valid = valid
        self.batches = Range(n_batches(len(seqs), batch))
        self.train_tokens = int(self.lengths.sum())
        self.tokens_per_epoch = len(seqs)
        self.has_validation = valid is not None and len(valid[0]) > 0

    def loss(self, model, epoch: int, k: int, rng):
        index = self.batch_indices(epoch, k)
        X, lengths = pad([self.seqs[i] for i in index])
        L, nll, _, cache = loss(model, X, lengths, self.y[index], rng,
                                batch_words(model, self.words, self.lm, index))
        return L, nll, len(index), cache

    def backward(self, model, cache) -> dict:
        return backward(model, cache)

    def validate(self, model) -> dict:
        t0 = time.perf_counter()
        seqs, y = self.valid
        P = predict_proba(model, seqs, self.eval_batch, self.valid_words, self.valid_lm)
        pred = P.argmax(axis=1)
        nll = -np.log(np.maximum(P[np.arange(len(y)), y], 1e-300))
        return {"valid_accuracy": float((pred == y).mean()), "valid_loss": float(nll.mean()),
                "valid_macro_f1": macro_f1(confusion_matrix(y, pred, P.shape[1])),
                "valid_examples": len(y), "eval_seconds": time.perf_counter() - t0}


# ------------------------------------------------------------ the run set-up
# Chosen by measurement (docs/benchmarks.md, "Per-task defaults"): the shape on one core with
# 60 s budgets on MR and the UCI sentences (the language model's, char level 2x512, learn next
# to nothing there); the embedding and input dropout on MR's ten folds, by validation accuracy.
DEFAULTS = {"level": "word", "bidirectional": True, "embed": 128, "hidden": 64, "layers": 1,
            "dropout": 0.5, "input_dropout": 0.4, "lr": 5e-3, "batch": 32, "pool": "mean",
            "eval_every": 100}
# Options that apply to the classifier only: pooling, its data formats, cross-validation (and,
# with the tagger, the frozen character LMs' features).
OPTIONS = ("pool", "classes", "label_column", "folds", "lm_features", "tokenizer")
DEFAULT_FILES = ("amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt")
DEFAULT_NOTICE = (f"Training on the bundled review sentences: {', '.join(DEFAULT_FILES)} "
                  "(3,000 labelled sentences).")


def complete(options: dict, given: dict) -> dict:
    """Nothing to adjust."""
    return options


def check(mcfg, tcfg) -> None:
    """LM features are per word: they need word tokens."""
    if mcfg.lm_features and tcfg.level != "word":
        raise ConfigError("--lm-features gives each word the character LMs' states: it needs "
                          "--level word. Drop --level char or --lm-features.")


def default_corpus() -> tuple[list, None]:
    """The bundled UCI Sentiment Labelled Sentences (see corpora/README.md)."""
    return [bundled(n) for n in DEFAULT_FILES], None


@dataclass
class ClassifyData:
    """Training (and validation) examples as ids: the input of :class:`ClassifyTask`; and
    their texts, which a model with LM features reads too."""

    vocab: Vocab
    labels: list[str]
    x: list[np.ndarray]
    y: np.ndarray
    valid: tuple[list[np.ndarray], np.ndarray] | None
    texts: list[str] | None = None
    valid_texts: list[str] | None = None


def read_examples_of(sources, label_column: str = "auto",
                     known_labels: list[str] | None = None) -> tuple[Examples, Examples | None]:
    """The training examples (labelled files and one-file-per-class files) and the
    validation file's examples."""
    examples = Examples()
    for name, text in sources.files:
        examples.extend(parse_labelled(text, name, label_column, known_labels))
    for label, name, text in sources.classes:
        examples.extend(parse_class_file(text, name, label))
    if not len(examples):
        raise CorpusError("No examples to read. Give a labelled file, or --class LABEL=FILE "
                          "for each class.")
    valid = None
    if sources.valid is not None:
        name, text = sources.valid
        valid = parse_labelled(text, name, label_column, known_labels or label_set(examples.labels))
    return examples, valid


def read_data(sources, cfg, known=None) -> ClassifyData:
    train, valid = read_examples_of(sources, cfg.label_column,
                                    known.labels if known is not None else None)
    return data_from_examples(train, valid, cfg, known.labels if known is not None else None)


def data_from_examples(train: Examples, valid: Examples | None, cfg,
                       classes: list[str] | None = None) -> ClassifyData:
    """Class ids, vocabulary and token ids of labelled examples.

    ``valid`` None and ``cfg.valid_fraction`` > 0: a seeded stratified part of ``train`` is
    held out for validation. The vocabulary comes from the training texts only (validation
    tokens outside it are ``<UNK>``).
    """
    classes = classes or label_set(train.labels)
    if len(classes) < 2:
        raise CorpusError(f"The training data has only one class ({classes[0]!r}). A "
                          "classifier needs examples of at least two classes.")
    y = label_ids(train.labels, classes, train.where)
    if valid is None and cfg.valid_fraction > 0:
        tr, va = stratified_split(y, cfg.valid_fraction, cfg.seed)
        train, valid, y = train.subset(tr), train.subset(va), y[tr]
    vocab = build_vocab(train.texts, cfg.level, cfg.min_count, cfg.lowercase, cfg.vocab_size,
                        cfg.tokenizer)
    if len(vocab) <= 2:
        raise CorpusError(f"No token of the training texts is kept in the vocabulary (each "
                          f"must occur --min-count {cfg.min_count} times). Use more data or "
                          "a lower --min-count.")
    valid_part = None
    if valid is not None and len(valid):
        valid_part = (encode_texts(vocab, valid.texts),
                      label_ids(valid.labels, classes, valid.where))
    return ClassifyData(vocab, classes, encode_texts(vocab, train.texts), y, valid_part,
                        train.texts, valid.texts if valid_part is not None else None)


def same_data(model, data: ClassifyData) -> bool:
    return data.vocab.tokens == model.vocab.tokens and data.labels == model.labels


def create_model(config, data: ClassifyData, rng, lms=None):
    """A new classifier for the data; with ``lms`` ([(Model, reverse)], the frozen character
    LMs of ``--lm-features``) each word's input also holds their states (the LMs travel in
    its model file)."""
    features = None
    if lms:
        features = WordFeatures.build([], 0, lms)
        config.lm_features = features.lm_size
    return Model.create(config, data.vocab, rng, labels=data.labels, features=features)


def make_task(data: ClassifyData, cfg, model, reducer=None) -> ClassifyTask:
    f = model.features
    words = valid_words = None
    if f is not None:
        words = text_words(data.vocab, data.texts)
        if data.valid is not None:
            valid_words = text_words(data.vocab, data.valid_texts)
    return ClassifyTask(data.x, data.y, cfg.batch, cfg.seed, data.valid, cfg.eval_batch,
                        f, words, valid_words)


def prepare(train: Examples, valid: Examples | None, mcfg, tcfg,
            classes: list[str] | None = None, lms=None):
    """A fresh classifier and its training task for labelled examples (for scripts and
    tests; ``charlm train`` goes through the run set-up). Returns (model, task)."""
    data = data_from_examples(train, valid, tcfg, classes)
    model = create_model(mcfg, data, np.random.default_rng(tcfg.seed), lms)
    return model, make_task(data, tcfg, model)
