"""Tagging end to end: the CoNLL reader, entity metrics against hand-worked examples, the tag
task in the one trainer (best on validation, --patience, exact resume), the model file, the
Python API and the command line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import charlm
from charlm.cli import app
from charlm.errors import CorpusError, ModelFileError
from charlm.nn.model import Model, ModelConfig
from charlm.tasks.lm import LMTask
from charlm.tasks.metrics import entities, entity_spans, is_iob, tagging_scores
from charlm.tasks.tag import TagTask, load_data
from charlm.text import conll
from charlm.text.vocab import UNK_ID
from charlm.training import checkpoint
from charlm.training.trainer import TrainConfig, Trainer
from charlm.use.tagger import Tagger

runner = CliRunner()
NAMES = ["Harry", "Hermione", "Ron", "Albus", "Teddy"]
SURNAMES = ["Potter", "Granger", "Weasley", "Dumbledore", "Roosevelt"]
WORDS = ["and", "invented", "a", "new", "spell", "met", "said", "bears", "are", "on", "sale"]


def write_conll(path: Path, n: int, seed: int, plain: bool = False) -> Path:
    """Synthetic sentences: persons are a first name and a surname (B-PER I-PER), or 1 1."""
    r = random.Random(seed)
    lines = []
    for _ in range(n):
        for _ in range(r.randint(1, 3)):
            if r.random() < 0.6:
                b, i = ("1", "1") if plain else ("B-PER", "I-PER")
                lines += [f"{r.choice(NAMES)}\t{b}", f"{r.choice(SURNAMES)}\t{i}"]
            for _ in range(r.randint(1, 3)):
                lines.append(f"{r.choice(WORDS)}\t{'0' if plain else 'O'}")
        lines.append("" if r.random() < 0.5 else "\t ")      # blank or whitespace-only
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------ the reader
def test_reader_breaks_on_blank_and_whitespace_lines_and_skips_docstart():
    text = "-DOCSTART- -X- O O\n\nHarry\tB-PER\nPotter\tI-PER\n\t\nsaid O\n \n\n\tO\nx\tO\n"
    t = conll.parse(text, "f")
    assert t.tokens == [["Harry", "Potter"], ["said"], ["", "x"]]
    assert t.labels == [["B-PER", "I-PER"], ["O"], ["O", "O"]]
    assert t.lines == [3, 6, 9]


def test_reader_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(CorpusError, match=r"f line 3: 'Potter' has a token but no label"):
        conll.parse("Harry B-PER\n\nPotter\n", "f")
    binary = tmp_path / "b.conll"
    binary.write_bytes(b"Harry\tO\n\x00\x01\x02")
    with pytest.raises(CorpusError, match="b.conll line 2: a NUL byte.*binary"):
        conll.read(binary)
    dev = conll.parse("a O\nb B-LOC\n\nc O\nd B-MISC\n", "dev.conll")
    with pytest.raises(CorpusError, match=r"dev.conll line 5: label 'B-MISC' never occurs"):
        conll.check_labels(dev, ["O", "B-LOC"])


def test_label_order_is_o_then_by_type_b_before_i():
    t = conll.parse("a I-PER\nb B-ORG\nc O\nd B-PER\ne I-ORG\n", "f")
    assert conll.label_list(t) == ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]


# ----------------------------------------------------------------- the metrics
def test_entities_follow_the_conll_convention():
    # entity at the very end of the sentence
    assert entities(["O", "B-PER", "I-PER"]) == [("PER", 1, 3)]
    # I- after O starts a new entity
    assert entities(["O", "I-LOC", "I-LOC", "O"]) == [("LOC", 1, 3)]
    # a type change mid-span ends one entity and starts another
    assert entities(["B-PER", "I-PER", "I-ORG", "I-ORG"]) == [("PER", 0, 2), ("ORG", 2, 4)]
    # B- right after an entity of the same type starts a second one
    assert entities(["B-PER", "B-PER", "I-PER"]) == [("PER", 0, 1), ("PER", 1, 3)]
    assert entities(["I-PER"]) == [("PER", 0, 1)]
    assert entities(["O", "O"]) == []


def test_scores_against_a_hand_count():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-PER", "I-PER"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-PER", "O"]]
    # gold: PER(0,2) LOC(3,4) | PER(1,3); predicted: PER(0,2) ORG(3,4) | PER(1,2)
    # correct: PER(0,2) only. PER: P 1/2 R 1/2; LOC: P 0/0 R 0/1; ORG: P 0/1 R 0/0
    s = tagging_scores(gold, pred)
    assert s["accuracy"] == pytest.approx(5 / 7)
    e = s["entities"]
    assert (e["correct"], e["predicted"], e["gold"]) == (1, 3, 3)
    assert e["precision"] == pytest.approx(1 / 3) and e["recall"] == pytest.approx(1 / 3)
    assert e["f1"] == pytest.approx(1 / 3)
    assert s["per_type"]["PER"]["f1"] == pytest.approx(0.5)
    assert s["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                    "predicted": 0, "gold": 1, "correct": 0}
    assert s["per_type"]["ORG"]["precision"] == 0.0


def test_plain_labels_give_token_accuracy_only():
    assert not is_iob(["0", "1"]) and is_iob(["O", "B-PER", "I-PER"])
    s = tagging_scores([["1", "1", "0"]], [["1", "0", "0"]])
    assert s["accuracy"] == pytest.approx(2 / 3) and "entities" not in s


# ---------------------------------------------------------------- the trainer
SMALL_MODEL = dict(cell="lstm", layers=1, hidden=8, embed=6, dropout=0.2, task="tag",
                   bidirectional=True)


def tag_trainer(tmp_path, out, steps, plain=False, should_stop=None, **topts):
    train = write_conll(tmp_path / "train.conll", 80, 1, plain)
    dev = write_conll(tmp_path / "dev.conll", 20, 2, plain)
    cfg = TrainConfig(**{"batch": 8, "steps": steps, "eval_every": 5, "eval_batch": 7,
                         "seed": 4, "lr": 0.02, "level": "word", **topts})
    data = load_data(train, dev, cfg)
    model = Model.create(ModelConfig(**SMALL_MODEL), data.vocab,
                         np.random.default_rng(cfg.seed), data.labels)
    return Trainer(model, TagTask(data, cfg, model), cfg, out, should_stop=should_stop), data


def arrays_of(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "meta"}


def test_entity_spans_of_many_sentences_equal_entities_sentence_by_sentence():
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER", "I-ORG", "MISC"]
    rng = np.random.default_rng(0)
    sents = [rng.integers(0, len(labels), int(n)) for n in rng.integers(1, 9, 400)]
    first = np.concatenate([np.arange(len(x)) == 0 for x in sents])
    types, starts, ends = entity_spans(np.concatenate(sents), first, labels)
    offset = np.cumsum([0] + [len(x) for x in sents])
    want = [(t, int(offset[j] + a), int(offset[j] + b)) for j, x in enumerate(sents)
            for t, a, b in entities([labels[k] for k in x])]
    assert len(want) > 400
    assert list(zip(types, starts.tolist(), ends.tolist())) == want


@pytest.mark.parametrize("plain", [False, True])
def test_tag_token_lists_equals_each_sentence_on_its_own(tmp_path, plain):
    """The batched tagging (whole-array argmax, probabilities and entity spans) against each
    sentence alone through Model.forward, a softmax and metrics.entities, in float64 so that
    only round-off separates the two."""
    data = load_data(write_conll(tmp_path / "train.conll", 60, 1, plain), None,
                     TrainConfig(level="word", valid_fraction=0))
    model = Model.create(ModelConfig(**{**SMALL_MODEL, "dtype": "float64"}), data.vocab,
                         np.random.default_rng(3), data.labels)
    model.params["W_y"] *= 20          # sharper and more varied labels than at the start
    tagger = Tagger(model)
    sents = [*data.train.tokens[:30], [], ["Teddy", "Zebedee", "Potter"], ["Ron"]]
    got = tagger.tag_token_lists(sents, batch=7)
    n_ents = 0
    for toks, r in zip(sents, got):
        ids = np.array([[data.vocab.index.get(t, UNK_ID)] for t in toks], np.int64)
        if toks:
            z = model.forward(ids, None, None, np.array([len(toks)]))[0]
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
        else:
            p = np.zeros((0, len(data.labels)))
        labels = [data.labels[k] for k in p.argmax(axis=1)]
        ents = ([(t, a, b, " ".join(toks[a:b])) for t, a, b in entities(labels)]
                if not plain else [])
        assert r.tokens == toks and r.labels == labels and r.entities == ents
        np.testing.assert_allclose(r.distribution, p, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(r.probs, p.max(axis=1), rtol=1e-9, atol=1e-12)
        assert all(type(q) is float for q in r.probs)
        n_ents += len(ents)
    assert (n_ents > 10) != plain


def test_the_tagger_learns_and_keeps_the_best_by_entity_f1(tmp_path):
    tr, data = tag_trainer(tmp_path, tmp_path / "t.npz", 60)
    assert tr.task.metric == "valid_f1"
    tr.run_loop()
    hist = tr.run.history
    f1s = [h["valid_f1"] for h in hist]
    assert max(f1s) > 0.9                      # names then surnames: easy to learn
    assert tr.run.best_valid == max(f1s)
    tagger = charlm.load_model(tmp_path / "t.npz")
    assert isinstance(tagger, Tagger)
    # the file holds the best parameters: evaluating them gives the best F1 again
    assert tagger.evaluate(tmp_path / "dev.conll")["entities"]["f1"] == \
        pytest.approx(max(f1s), abs=1e-12)
    r = tagger.tag("Hermione Granger met Ron Weasley")
    assert r.labels == ["B-PER", "I-PER", "O", "B-PER", "I-PER"]
    assert [e[3] for e in r.entities] == ["Hermione Granger", "Ron Weasley"]
    assert all(0.0 < p <= 1.0 for p in r.probs)
    np.testing.assert_allclose(r.distribution.sum(axis=1), 1.0)


def test_plain_two_label_sets_use_token_accuracy(tmp_path):
    tr, _ = tag_trainer(tmp_path, tmp_path / "p.npz", 30, plain=True)
    assert tr.task.metric == "valid_accuracy"
    tr.run_loop()
    assert tr.run.best_valid == max(h["valid_accuracy"] for h in tr.run.history) > 0.8
    r = charlm.load_model(tmp_path / "p.npz").tag("Harry Potter and Hermione Granger invented "
                                                  "a new spell")
    assert r.labels == ["1", "1", "0", "1", "1", "0", "0", "0", "0"] and r.entities == []


def test_patience_stops_after_n_evaluations_without_improvement(tmp_path):
    # lr 0: nothing ever improves after the first evaluation
    tr, _ = tag_trainer(tmp_path, tmp_path / "q.npz", 500, patience=3, lr=1e-12)
    assert tr.run_loop() == "patience"
    assert tr.run.step == 5 * 4 and len(tr.run.history) == 4
    assert [h["best"] for h in tr.run.history] == [True, False, False, False]


def test_interrupted_and_resumed_tagging_equals_uninterrupted(tmp_path):
    ref, _ = tag_trainer(tmp_path, tmp_path / "ref.npz", 33)
    assert len(ref.batches) < 33                 # crosses epochs: reshuffled each time
    ref.run_loop()
    out = tmp_path / "int.npz"
    first, _ = tag_trainer(tmp_path, out, 33, should_stop=lambda: first.run.step >= 13)
    assert first.run_loop() == "interrupted"
    model, meta, arrays = checkpoint.load(out)
    cfg = TrainConfig.from_json(meta["config"])
    data = load_data(tmp_path / "train.conll", tmp_path / "dev.conll", cfg)
    second = Trainer(model, TagTask(data, cfg, model), cfg, out)
    second.restore(meta, arrays)
    second.run_loop()
    a, b = arrays_of(tmp_path / "ref.npz"), arrays_of(out)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


# -------------------------------------------------------------- the model file
def test_model_file_keeps_task_labels_and_shapes(tmp_path):
    tr, data = tag_trainer(tmp_path, tmp_path / "m.npz", 2)
    tr.run_loop()
    model, _, _ = checkpoint.load(tmp_path / "m.npz")
    assert model.config.task == "tag" and model.config.bidirectional
    assert model.labels == data.labels == ["O", "B-PER", "I-PER"]
    assert model.params["W_y"].shape == (3, 16) and "L1r.W_aa" in model.params
    # a damaged reverse direction is caught by the shape check
    arrays = arrays_of(tmp_path / "m.npz")
    arrays["param/L1r.W_ax"] = arrays["param/L1r.W_ax"][:, :-1]
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        meta = z["meta"]
    np.savez(tmp_path / "bad.npz", meta=meta, **arrays)
    with pytest.raises(ModelFileError, match="L1r.W_ax"):
        checkpoint.load(tmp_path / "bad.npz")


# ----------------------------------------------------------- the command line
def test_cli_train_tag_eval(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train = write_conll(tmp_path / "train.conll", 80, 1)
    dev = write_conll(tmp_path / "dev.conll", 20, 2)
    r = runner.invoke(app, ["train", "--task", "tag", str(train), "--valid", str(dev),
                            "--bidirectional", "--hidden", "8", "--embed", "6", "--layers",
                            "1", "--steps", "40", "--eval-every", "20", "--batch", "8",
                            "--lr", "0.02"])
    assert r.exit_code == 0, r.output
    assert Path("models/tag.npz").exists()
    r = runner.invoke(app, ["tag", "--json", "Ron Weasley said", "Teddy bears are on sale"])
    assert r.exit_code == 0, r.output
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert objs[0]["tokens"] == ["Ron", "Weasley", "said"]
    # an entity's probability: the lowest of its tokens' label probabilities
    assert objs[0]["entities"] == [{"type": "PER", "start": 0, "end": 2, "text": "Ron Weasley",
                                    "probability": min(objs[0]["probabilities"][0:2])}]
    assert set(objs[0]) == {"text", "tokens", "labels", "probabilities", "distribution",
                            "entities"}
    r = runner.invoke(app, ["tag", "Ron Weasley said"])
    assert r.exit_code == 0 and "[Ron Weasley]PER" in r.stdout
    (tmp_path / "s.txt").write_text("Albus Dumbledore said\n\nbears\n")
    r = runner.invoke(app, ["tag", "--file", "s.txt", "--json"])
    assert [len(json.loads(x)["tokens"]) for x in r.stdout.splitlines()] == [3, 0, 1]
    r = runner.invoke(app, ["eval", str(dev), "--model", "models/tag.npz", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["entities"]["f1"] > 0.5 and "PER" in s["per_type"]
    assert s["entities"]["f1"] == pytest.approx(
        charlm.load_model("models/tag.npz").evaluate(dev)["entities"]["f1"])
    r = runner.invoke(app, ["score", "x", "--model", "models/tag.npz"])
    assert r.exit_code == 2 and "charlm tag" in r.output


def test_cli_refuses_a_bidirectional_language_model(tmp_path):
    r = runner.invoke(app, ["train", str(tmp_path / "x.txt"), "--bidirectional",
                            "--out", str(tmp_path / "m.npz")])
    assert r.exit_code == 2 and "predict" in r.output
    assert not (tmp_path / "m.npz").exists()


def test_cli_tag_without_a_model_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["tag", "hello"])
    assert r.exit_code == 1 and "charlm train --task tag" in r.output


def test_word_vocabulary_min_count_lowercase_and_unk():
    from charlm.tasks.tag import build_vocab, encode_tokens
    from charlm.text.vocab import UNK_ID
    t = conll.parse("Harry B-PER\nharry B-PER\nsaid O\n\nHARRY B-PER\nsaid O\nonce O\n", "f")
    v = build_vocab(t, max_size=100, min_count=2, lowercase=True)
    assert v.tokens[2:] == ["harry", "said"]          # 3 and 2 occurrences; "once" only 1
    assert encode_tokens(v, ["HaRRy", "once", "said"]).tolist() == [2, UNK_ID, 3]
    v = build_vocab(t, max_size=100, min_count=1, lowercase=False)
    assert encode_tokens(v, ["harry", "HARRY", "Said"]).tolist()[:2] != [UNK_ID, UNK_ID]
    assert encode_tokens(v, ["Said"]).tolist() == [UNK_ID]


def test_patience_applies_to_the_language_model_too(tmp_path):
    from charlm.tasks.stream import prepare_corpus
    text = "".join(" ".join(random.Random(k).choice(WORDS) for _ in range(5)) + "\n"
                   for k in range(200))
    cfg = TrainConfig(batch=4, bptt=8, steps=400, eval_every=3, eval_batch=2, lr=1e-12,
                      patience=2)
    corpus = prepare_corpus([text], cfg)
    model = Model.create(ModelConfig(layers=1, hidden=8, embed=4, dropout=0.0), corpus.vocab,
                         np.random.default_rng(0))
    tr = Trainer(model, LMTask(corpus, cfg, model), cfg, tmp_path / "lm.npz")
    assert tr.task.metric == "valid_loss" and not tr.task.higher_is_better
    # lr ~ 0: the loss moves by round-off at most, so improvements stop within a few evals
    assert tr.run_loop() == "patience"
    assert tr.run.since_best == 2 and tr.run.step == 3 * len(tr.run.history)
    _, meta, _ = checkpoint.load(tmp_path / "lm.npz")
    assert meta["run"]["finished"] is True


def test_api_tag_training_follows_the_command_rules(tmp_path):
    """charlm.train(task="tag") refuses to replace a model file without force=True, and with
    it keeps the old file as .bak, as the language model's setup does (runs.py)."""
    train = write_conll(tmp_path / "train.conll", 40, 1)
    dev = write_conll(tmp_path / "dev.conll", 10, 2)
    out = tmp_path / "t.npz"
    opts = dict(task="tag", valid=dev, out=out, steps=2, hidden=4, embed=4, layers=1,
                batch=8, eval_every=2)
    charlm.train(train, **opts)
    first = out.read_bytes()
    with pytest.raises(charlm.CharlmError, match="already exists"):
        charlm.train(train, **opts)
    assert out.read_bytes() == first                       # untouched by the refusal
    charlm.train(train, force=True, **opts)
    assert (tmp_path / "t.npz.bak").read_bytes() == first  # the old file, kept whole


def test_a_tagger_at_char_level_is_refused_not_silently_changed(tmp_path):
    """--task tag reads word tokens: --level char given with it is an error (it used to be
    overridden quietly), and no file is written."""
    train = write_conll(tmp_path / "train.conll", 10, 1)
    r = runner.invoke(app, ["train", "--task", "tag", str(train), "--level", "char",
                                 "--out", str(tmp_path / "t.npz"), "--steps", "1"])
    assert r.exit_code == 2 and "reads word tokens" in r.stderr, r.output
    assert not (tmp_path / "t.npz").exists()
