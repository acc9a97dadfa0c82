"""The classification task (many-to-one): its data, its head and what the trainer needs.

Letters: ``N`` examples, ``K`` classes, ``T`` steps of the longest example in a batch, ``m``
examples in a batch, ``D`` the size of the top layer's output (``n_a``, ``2 n_a`` for a BRNN).

The model: embedding -> the shared layer stack (:mod:`charlm.encoder`, masked, optionally
bidirectional) -> one pooled vector ``p`` (m, D) per example (:mod:`charlm.pooling`) ->
``ŷ = softmax(W_y p + b_y)`` with ``W_y`` (K, D). The loss is the cross-entropy of each
example's class, averaged over the batch.

Formats read, one example per line (lines are split on ``"\\n"`` only: U+0085 and the other
Unicode line separators are ordinary characters inside a line, as real review files have them):

- ``LABEL<TAB>TEXT`` or ``TEXT<TAB>LABEL``: the label side is the column with fewer distinct
  values (or the one whose values are all known labels, when evaluating a trained model), or
  the side ``label_column`` names (``first`` / ``last``). A text may itself hold tabs: the label
  is split off at the first (label first) or the last (label last) tab;
- fastText's ``__label__X text``;
- one file per class (:func:`parse_class_file`): every line of the file is an example of it.

Blank (or whitespace-only) lines are skipped. Anything else that cannot be read is a
``CorpusError`` naming the file and the line.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, CorpusError
from ..nn.layers import log_softmax, softmax_xent
from .metrics import confusion_matrix, macro_f1
from ..nn.pooling import pool_backward, pool_forward
from ..text.vocab import UNK_ID, Vocab
from . import Range, SentenceTask, n_batches, pad

FASTTEXT = "__label__"
LABEL_COLUMNS = ("auto", "first", "last")


@dataclass
class Examples:
    """N labelled texts: ``texts[i]`` has class ``labels[i]`` (a string); ``where[i]`` is
    "file:line" for error messages."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    where: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def extend(self, other: "Examples") -> None:
        self.texts += other.texts
        self.labels += other.labels
        self.where += other.where

    def subset(self, index) -> "Examples":
        return Examples([self.texts[i] for i in index], [self.labels[i] for i in index],
                        [self.where[i] for i in index])


# ------------------------------------------------------------------ reading
def _lines(text: str):
    """(line number, line) of every non-blank line, split on "\\n" only."""
    for k, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield k, line


def parse_labelled(text: str, name: str, label_column: str = "auto",
                   known_labels: list[str] | None = None) -> Examples:
    """The examples of one labelled file's text (see the module docstring for the formats)."""
    if label_column not in LABEL_COLUMNS:
        raise ConfigError(f"--label-column must be auto, first or last (got {label_column!r}).")
    lines = list(_lines(text))
    if not lines:
        raise CorpusError(f"{name} has no examples (it is empty or only whitespace). "
                          "Give a file with one labelled example per line.")
    if lines[0][1].lstrip().startswith(FASTTEXT):
        return _parse_fasttext(lines, name)
    rows = []
    for k, line in lines:
        if "\t" not in line:
            raise CorpusError(f"{name}, line {k}: no tab between a label and a text "
                              f"({_show(line)}). Write LABEL<TAB>TEXT, TEXT<TAB>LABEL or "
                              "__label__X text, one example per line.")
        rows.append((k, line))
    side = label_column if label_column != "auto" else _label_side(rows, name, known_labels)
    out = Examples()
    for k, line in rows:
        if side == "first":
            label, body = line.split("\t", 1)
        else:
            body, label = line.rsplit("\t", 1)
        label, body = label.strip(), body.strip()
        if not label:
            raise CorpusError(f"{name}, line {k}: the label is empty ({_show(line)}). "
                              "Give every example a label.")
        if not body:
            raise CorpusError(f"{name}, line {k}: the text is empty ({_show(line)}). "
                              "Give every example a text, or delete the line.")
        out.texts.append(body)
        out.labels.append(label)
        out.where.append(f"{name}:{k}")
    return out


def _label_side(rows, name: str, known: list[str] | None) -> str:
    """Which column of tab-separated rows holds the label: 'first' or 'last'."""
    first = [line.split("\t", 1)[0].strip() for _, line in rows]
    last = [line.rsplit("\t", 1)[1].strip() for _, line in rows]
    if known is not None:
        ok = [s for s, col in (("last", last), ("first", first)) if set(col) <= set(known)]
        if len(ok) == 1:
            return ok[0]
    n_first, n_last = len(set(first)), len(set(last))
    if n_first != n_last:
        return "first" if n_first < n_last else "last"
    # as many distinct values on both sides (a tiny file): labels are single words
    spaced = [any(any(c.isspace() for c in v) for v in col) for col in (first, last)]
    if spaced == [True, False]:
        return "last"
    if spaced == [False, True]:
        return "first"
    raise CorpusError(f"{name}: cannot tell which column holds the labels (both sides have "
                      f"{n_first} distinct values). Pass --label-column first or last.")


def _parse_fasttext(lines, name: str) -> Examples:
    out = Examples()
    for k, line in lines:
        words = line.split()
        if not words[0].startswith(FASTTEXT) or len(words[0]) == len(FASTTEXT):
            raise CorpusError(f"{name}, line {k}: expected {FASTTEXT}LABEL at the start, as on "
                              f"line {lines[0][0]} ({_show(line)}). Give every line its label.")
        if len(words) > 1 and words[1].startswith(FASTTEXT):
            raise CorpusError(f"{name}, line {k}: more than one label ({_show(line)}). charlm "
                              "classifies into one class per example; keep one label.")
        body = line.strip()[len(words[0]):].strip()
        if not body:
            raise CorpusError(f"{name}, line {k}: the text is empty ({_show(line)}). "
                              "Give every example a text, or delete the line.")
        out.texts.append(body)
        out.labels.append(words[0][len(FASTTEXT):])
        out.where.append(f"{name}:{k}")
    return out


def parse_class_file(text: str, name: str, label: str) -> Examples:
    """Every non-blank line of one class's file, as an example of ``label``."""
    out = Examples()
    for k, line in _lines(text):
        out.texts.append(line.strip())
        out.labels.append(label)
        out.where.append(f"{name}:{k}")
    if not out.texts:
        raise CorpusError(f"{name} (class {label}) has no examples: it is empty or only "
                          "whitespace. Give a file with one example per line.")
    return out


def parse_class_option(spec: str) -> tuple[str, str]:
    """``--class pos=FILE`` -> ("pos", "FILE")."""
    label, sep, path = spec.partition("=")
    if not sep or not label.strip() or not path:
        raise ConfigError(f"--class takes LABEL=FILE (got {spec!r}), e.g. --class pos=pos.txt.")
    return label.strip(), path


def read_examples(paths=(), classes=(), label_column: str = "auto", encoding: str = "utf-8",
                  known_labels: list[str] | None = None) -> Examples:
    """Examples from labelled files (``paths``) and from one-file-per-class pairs
    (``classes``: (label, path) or "label=path")."""
    from ..api import read_text
    out = Examples()
    for p in paths:
        out.extend(parse_labelled(read_text(p, encoding), str(p), label_column, known_labels))
    for spec in classes:
        label, p = parse_class_option(spec) if isinstance(spec, str) else spec
        out.extend(parse_class_file(read_text(p, encoding), str(p), label))
    if not len(out):
        raise CorpusError("No examples to read. Give a labelled file, or --class LABEL=FILE "
                          "for each class.")
    return out


def _show(line: str, n: int = 40) -> str:
    return repr(line if len(line) <= n else line[:n] + "…")


# ------------------------------------------------------------ label set, ids
def label_set(labels: list[str]) -> list[str]:
    """The classes, sorted (numbers numerically: "2" before "10"), so ids do not depend on the
    order of the examples."""
    def key(s):
        try:
            return (0, float(s), s)
        except ValueError:
            return (1, 0.0, s)
    return sorted(set(labels), key=key)


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
                max_size: int | None = None) -> Vocab:
    """The vocabulary of the training texts (``<UNK>`` for the rest; no corpus unknown
    marker: ``<unk>`` in a review is just text)."""
    return Vocab.build(texts, level, max_size=max_size, min_count=min_count,
                       lowercase=lowercase, unk_token=None)


def encode_texts(vocab: Vocab, texts: list[str]) -> list[np.ndarray]:
    """Each text's token ids. A text with no token at all (only spaces, at word level only
    symbols the tokenizer drops) becomes one ``<UNK>``: every example has at least one step."""
    out = []
    for t in texts:
        ids = vocab.encode(t)
        out.append(ids if len(ids) else np.array([UNK_ID], dtype=vocab.dtype))
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
def forward(model, X: np.ndarray, lengths: np.ndarray, rng: np.random.Generator | None = None):
    """ŷ's logits for a padded batch: embedding -> layers -> pooled (m, D) -> W_y p + b_y.

    X (T, m) ids, lengths (m,); ``rng`` turns dropout on. Returns logits (m, K) and the cache
    for :func:`backward`.
    """
    h, _, enc_cache = model.encode(X, None, lengths, rng)
    logits, pool_cache, p = _head(model, h, lengths)
    return logits, (enc_cache, pool_cache, p)


def infer(model, X: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The logits (m, K) of :func:`forward` without dropout, on the forward-only path
    (:meth:`Model.encode_infer`: no cache)."""
    h, _ = model.encode_infer(X, None, lengths)
    return _head(model, h, lengths)[0]


def _head(model, h: np.ndarray, lengths: np.ndarray):
    """Pooling and the output layer: h (T, m, D) -> logits (m, K), the pooling's cache, p."""
    cfg = model.config
    p, pool_cache = pool_forward(h, lengths, cfg.pool, cfg.bidirectional)
    return model.output(p), pool_cache, p


def loss(model, X: np.ndarray, lengths: np.ndarray, y: np.ndarray,
         rng: np.random.Generator | None = None):
    """Cross-entropy of the gold classes y (m,), averaged over the batch.

    Returns (L, summed NLL, logits (m, K), cache for :func:`backward`)."""
    logits, cache = forward(model, X, lengths, rng)
    L, nll, dlogits = softmax_xent(logits, np.asarray(y, dtype=np.intp), len(y))
    return L, nll, logits, (cache, dlogits)


def backward(model, loss_cache) -> dict[str, np.ndarray]:
    """Gradients of every parameter (same keys as ``model.params``)."""
    (enc_cache, pool_cache, p), dlogits = loss_cache
    grads = {"W_y": dlogits.T @ p, "b_y": dlogits.sum(axis=0)}
    dh = pool_backward(dlogits @ model.params["W_y"], pool_cache)
    grads, _ = model.encode_backward(dh, enc_cache, grads)
    return grads


def predict_proba(model, seqs: list[np.ndarray], m: int = 64) -> np.ndarray:
    """P(class | text) for every sequence: (N, K), in the order given. Batches are made of
    sequences of similar length (less padding); the result does not depend on them."""
    K = model.params["b_y"].shape[0]
    out = np.empty((len(seqs), K), dtype=np.float64)
    order = np.argsort([len(s) for s in seqs], kind="stable")
    for s in range(0, len(order), m):
        index = order[s: s + m]
        X, lengths = pad([seqs[i] for i in index])
        logits = infer(model, X, lengths)
        out[index] = np.exp(log_softmax(logits.astype(np.float64)))
    return out


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

    def __init__(self, seqs: list[np.ndarray], y: np.ndarray, batch: int, seed: int,
                 valid: tuple[list[np.ndarray], np.ndarray] | None = None, eval_batch: int = 64):
        if not len(seqs):
            raise CorpusError("No training examples. Give a labelled file with some lines.")
        self.seqs, self.y = seqs, np.asarray(y, dtype=np.int64)
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
        L, nll, _, cache = loss(model, X, lengths, self.y[index], rng)
        return L, nll, len(index), cache

    def backward(self, model, cache) -> dict:
        return backward(model, cache)

    def validate(self, model) -> dict:
        t0 = time.perf_counter()
        seqs, y = self.valid
        P = predict_proba(model, seqs, self.eval_batch)
        pred = P.argmax(axis=1)
        nll = -np.log(np.maximum(P[np.arange(len(y)), y], 1e-300))
        return {"valid_accuracy": float((pred == y).mean()), "valid_loss": float(nll.mean()),
                "valid_macro_f1": macro_f1(confusion_matrix(y, pred, P.shape[1])),
                "valid_examples": len(y), "eval_seconds": time.perf_counter() - t0}

