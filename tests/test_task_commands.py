"""The tagging and classification commands as a user meets them, held to the conventions of
docs/command-line.md: default model paths per task, `-` and pipes, labelled and CoNLL input,
one set of JSON names and precision, options that do not apply, help that fits, errors that
say what the file is. Every printed figure is compared with the library's own result."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_classify_cli import toy_tsv
from typer.testing import CliRunner

import charlm
from charlm.cli import app
from charlm.tasks import TASKS
from charlm.text.labelled import read_examples

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["Harry", "Hermione", "Ron", "Albus", "Teddy"]
SURNAMES = ["Potter", "Granger", "Weasleyfamily", "Dumbledorexyz", "Roosevelt"]
WORDS = ["and", "invented", "a", "new", "spell", "met", "said", "bears", "are", "on", "sale",
         "extraordinarily", "unbelievable", "wonderful"]
TAG = ["--task", "tag", "--bidirectional", "--hidden", "8", "--embed", "6", "--layers", "1",
       "--batch", "8", "--lr", "0.02"]
CLF = ["--task", "classify", "--level", "word", "--cell", "gru", "--layers", "1", "--hidden",
       "8", "--embed", "8", "--batch", "8", "--lr", "0.02", "--dropout", "0"]


def invoke(*args, **kw):
    return CliRunner().invoke(app, [str(a) for a in args], **kw)


def write_conll(path: Path, n: int, seed: int) -> Path:
    """Sentences with persons (B-PER I-PER) among other words, tab-separated."""
    r = random.Random(seed)
    lines = []
    for _ in range(n):
        for _ in range(r.randint(1, 3)):
            if r.random() < 0.6:
                lines += [f"{r.choice(NAMES)}\tB-PER", f"{r.choice(SURNAMES)}\tI-PER"]
            lines += [f"{r.choice(WORDS)}\tO" for _ in range(r.randint(1, 3))]
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_tsv(path: Path, n: int, seed: int, label_first: bool = False) -> Path:
    """Labelled lines: a class word (fine / dull) and noise letters (test_classify_cli's)."""
    return toy_tsv(path, n, seed, label_first)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tagger and a classifier trained through the command line, their logs, the data."""
    d = tmp_path_factory.mktemp("task")
    train, dev = write_conll(d / "train.conll", 80, 1), write_conll(d / "dev.conll", 20, 2)
    r = invoke("train", *TAG, train, "--valid", dev, "--steps", 40, "--eval-every", 20,
               "--out", d / "tag.npz")
    assert r.exit_code == 0, r.output
    tsv, test = write_tsv(d / "train.tsv", 80, 0), write_tsv(d / "test.tsv", 30, 5)
    c = invoke("train", *CLF, tsv, "--steps", 40, "--eval-every", 20, "--out", d / "clf.npz")
    assert c.exit_code == 0, c.output
    return {"dir": d, "tag": d / "tag.npz", "clf": d / "clf.npz", "dev": dev, "test": test,
            "tag_log": r.stderr, "tag_out": r.stdout}


@pytest.fixture
def at_defaults(models, tmp_path, monkeypatch):
    """A fresh directory holding the two models at their default paths (and no char model)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    shutil.copy(models["tag"], "models/tag.npz")
    shutil.copy(models["clf"], "models/classify.npz")
    return tmp_path


# --------------------------------------------------- 1. nothing cut in a log
def test_evaluation_lines_are_whole_in_a_log(models):
    """stderr is not a terminal: each evaluation line keeps entity F1, P, R and *best."""
    evals = [line for line in models["tag_log"].splitlines() if "valid" in line]
    assert len(evals) == 2, models["tag_log"]
    for line in evals:
        assert not line.endswith("…")
        assert re.search(r"entity F1 \d+\.\d\d % \(P \d+\.\d\d %, R \d+\.\d\d %\)", line), line
    assert evals[0].endswith(" *best")
    hist = charlm.load_model(models["tag"]).train_meta["run"]["history"]
    f1 = [h["valid_f1"] for h in hist if "valid_f1" in h]
    assert [re.search(r"entity F1 (\S+) %", x).group(1) for x in evals] == \
        [f"{100 * f:.2f}" for f in f1]


def test_info_keeps_every_column_when_piped(models):
    tagger = charlm.load_model(models["tag"])
    toks = tagger.vocab.tokens
    want = (f"vocabulary  {len(toks):,} tokens: " + " ".join(toks[:20])
            + (" …" if len(toks) > 20 else ""))
    assert len(want) > 80                       # a line the old 80-column cut would lose
    r = invoke("info", models["tag"])
    assert r.exit_code == 0, r.output
    assert want in r.stdout.splitlines()


# --------------------------------------- 2. task models at their default paths
def test_eval_and_info_find_task_models_by_task(models, at_defaults):
    dev = models["dev"]
    r = invoke("eval", dev, "--task", "tag", "--json")
    assert r.exit_code == 0, r.output
    lib = charlm.load_model("models/tag.npz").evaluate(dev)
    assert json.loads(r.stdout)["accuracy"] == significant(lib["accuracy"])
    r = invoke("eval", models["test"], "--task", "classify", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model"] == str(Path("models/classify.npz"))
    run = charlm.load_model("models/classify.npz").train_meta["run"]
    for args in (["--task", "classify"], ["models/classify.npz"],
                 ["--model", "models/classify.npz"]):
        r = invoke("info", *args, "--json")
        assert r.exit_code == 0, r.output
        info = json.loads(r.stdout)
        assert info["task"] == "classify" and info["best_valid_metric"] == "valid_accuracy"
        # the best figure under its own name: an accuracy is not a loss
        assert info["best_valid"] == run["best_valid"] and info["best_valid_loss"] is None
    # no char model: the error names the task models that are there
    r = invoke("eval", dev)
    assert r.exit_code == 1
    assert "add --task tag" in r.stderr and "add --task classify" in r.stderr
    # --task and a file of another task disagree: an error, not a silent choice
    r = invoke("eval", dev, "--task", "classify", "--model", "models/tag.npz")
    assert r.exit_code == 2 and "not a classifier" in r.stderr


def test_the_hint_after_training_works_as_printed(models, at_defaults):
    r = invoke("train", *TAG, models["dir"] / "train.conll", "--steps", 2, "--force")
    assert r.exit_code == 0, r.output
    nxt = r.stdout.splitlines()[-1]
    assert nxt.startswith("Next: ")
    tag_cmd, eval_cmd = nxt[len("Next: "):].split("    ")
    assert eval_cmd == "charlm eval DEV.conll --task tag"
    r = invoke(*eval_cmd.replace("DEV.conll", str(models["dev"])).split()[1:])
    assert r.exit_code == 0, r.output


# -------------------------------------------------------- 3. `-` and pipes
def test_dash_and_pipes_for_every_command_that_reads_text(models, at_defaults):
    dev = models["dev"].read_text(encoding="utf-8")
    by_file = invoke("eval", models["dev"], "--task", "tag", "--json")
    by_stdin = invoke("eval", "-", "--model", "models/tag.npz", "--json", input=dev)
    assert by_stdin.exit_code == 0, by_stdin.output
    strip = lambda o: {k: v for k, v in json.loads(o).items() if k != "file"}  # noqa: E731
    assert strip(by_stdin.stdout) == strip(by_file.stdout)
    test = models["test"].read_text(encoding="utf-8")
    r = invoke("eval", "-", "--task", "classify", "--json", input=test)
    assert r.exit_code == 0, r.output
    # no text given, standard input piped: it is the input, as for `charlm score`
    r = invoke("classify", input="fine a b\ndull c\n")
    assert r.exit_code == 0, r.output
    clf = charlm.load_model("models/classify.npz")
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == \
        [p.label for p in clf.classify_many(["fine a b", "dull c"])]
    r = invoke("tag", "--json", input="Ron Weasleyfamily said\n")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["labels"] == \
        charlm.load_model("models/tag.npz").tag("Ron Weasleyfamily said").labels


def test_a_real_pipe_into_tag(models, at_defaults):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "charlm", "tag", "--json"],
                       input=b"Harry Potter met Ron\n", capture_output=True, env=env,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["tokens"] == ["Harry", "Potter", "met", "Ron"]


# ---------------------------------------------------- 4. labelled input
@pytest.mark.parametrize("label_first", [False, True])
def test_classify_sets_a_label_column_aside(models, tmp_path, label_first):
    f = write_tsv(tmp_path / "t.tsv", 12, 7, label_first)
    ex = read_examples([f])
    clf = charlm.load_model(models["clf"])
    r = invoke("classify", "--file", f, "--model", models["clf"], "--json")
    assert r.exit_code == 0, r.output
    objs = [json.loads(x) for x in r.stdout.splitlines()]
    assert [o["text"] for o in objs] == ex.texts          # the label is not part of the text
    assert [o["gold"] for o in objs] == ex.labels
    preds = clf.classify_many(ex.texts)
    assert [o["label"] for o in objs] == [p.label for p in preds]
    agree = sum(p.label == g for p, g in zip(preds, ex.labels))
    assert f"{agree} of 12 predictions match them" in r.stderr
    assert f"(accuracy {100 * agree / 12:.2f} %)" in r.stderr
    # --label-column none: each whole line is the text
    r = invoke("classify", "--file", f, "--model", models["clf"], "--json",
               "--label-column", "none")
    assert [json.loads(x)["text"] for x in r.stdout.splitlines()] == \
        f.read_text().splitlines()


def test_eval_takes_one_file_per_class(models, tmp_path):
    ex = read_examples([models["test"]])
    files = {}
    for lab in ("pos", "neg"):
        files[lab] = tmp_path / f"{lab}.txt"
        files[lab].write_text("\n".join(t for t, g in zip(ex.texts, ex.labels) if g == lab)
                              + "\n", encoding="utf-8")
    by_class = invoke("eval", "--model", models["clf"], "--json",
                      *[f"--class={lab}={p}" for lab, p in files.items()])
    assert by_class.exit_code == 0, by_class.output
    got = json.loads(by_class.stdout)
    want = charlm.load_model(models["clf"]).evaluate(models["test"])
    assert got["examples"] == want["examples"] == 30
    assert got["accuracy"] == significant(want["accuracy"])
    assert got["class_files"] == {lab: str(p) for lab, p in files.items()}


# ---------------------------------------------------------- 5. CoNLL input
def test_tag_a_conll_file_gives_conll_back(models):
    lines = models["dev"].read_text(encoding="utf-8").split("\n")
    r = invoke("tag", "--file", models["dev"], "--model", models["tag"])
    assert r.exit_code == 0, r.output
    out = r.stdout.split("\n")
    # one row per token line, blank lines between sentences, as in the file
    assert [row == "" for row in out[:len(lines)]] == [line == "" for line in lines]
    sentences, cur = [], []
    for line in lines:
        if line:
            cur.append(line.split("\t"))
        elif cur:
            sentences.append(cur)
            cur = []
    tagger = charlm.load_model(models["tag"])
    pred = tagger.tag_token_lists([[t for t, _ in s] for s in sentences])
    want = [f"{t}\t{g}\t{p}" for s, r_ in zip(sentences, pred)
            for (t, g), p in zip(s, r_.labels)]
    assert [row for row in out if row] == want
    # tokens alone (one column): token and predicted label; --conll says it is CoNLL
    only = "\n".join(line.split("\t")[0] for line in lines)
    r = invoke("tag", "-", "--conll", "--model", models["tag"], input=only)
    assert r.exit_code == 0, r.output
    assert [row for row in r.stdout.split("\n") if row] == \
        ["\t".join(w.split("\t")[::2]) for w in want]


# --------------------------------------- 6. one set of names, one precision
def test_json_names_and_precision_agree_across_commands(models):
    r = invoke("tag", "--model", models["tag"], "--json", "Albus Dumbledorexyz said")
    t = json.loads(r.stdout)
    lib = charlm.load_model(models["tag"]).tag("Albus Dumbledorexyz said")
    assert t["probabilities"] == [significant(p) for p in lib.probabilities]
    assert t["distribution"][0] == {k: significant(float(p))
                                    for k, p in zip(lib_labels(models), lib.distribution[0])}
    from charlm.use.tagger import Entity
    assert all(isinstance(e, Entity) for e in lib.entities)
    for e, j in zip(lib.entities, t["entities"]):
        typ, start, end, text = e                        # still unpacks as a tuple
        assert (j["type"], j["start"], j["end"], j["text"]) == (e.type, e.start, e.end, e.text)
        assert j["probability"] == significant(min(lib.probabilities[start:end]))
    c = json.loads(invoke("classify", "--model", models["clf"], "--json", "fine a").stdout)
    p = charlm.load_model(models["clf"]).classify("fine a")
    assert set(c) == {"text", "label", "probability", "distribution"}
    assert c["probability"] == significant(p.probability)
    assert c["distribution"] == {k: significant(v) for k, v in p.distribution.items()}
    # eval: the tagger's per-type counts and the classifier's per-class counts share names
    et = json.loads(invoke("eval", models["dev"], "--model", models["tag"], "--json").stdout)
    ec = json.loads(invoke("eval", models["test"], "--model", models["clf"], "--json").stdout)
    keys = {"precision", "recall", "f1", "gold", "predicted", "correct"}
    assert set(et["entities"]) == keys and all(set(v) == keys for v in et["per_type"].values())
    assert all(set(v) == keys for v in ec["per_class"].values())
    assert et["task"] == "tag" and ec["task"] == "classify" and "nll" in et and "nll" in ec


def significant(x: float) -> float:
    """6 significant digits, as docs/command-line.md says JSON gives ratios and
    probabilities (written here again, not taken from charlm)."""
    return float(f"{x:.6g}")


def lib_labels(models):
    return charlm.load_model(models["tag"]).labels


def test_text_spans_and_percentages_match_the_json(models):
    sent = "Harry Potter met Hermione Granger"
    js = json.loads(invoke("tag", "--model", models["tag"], "--json", sent).stdout)
    txt = invoke("tag", "--model", models["tag"], sent).stdout
    for e in js["entities"]:
        assert (f"(tokens {e['start']}:{e['end']}, lowest label probability "
                f"{e['probability']:.2f})") in txt
    et = json.loads(invoke("eval", models["dev"], "--model", models["tag"], "--json").stdout)
    tt = invoke("eval", models["dev"], "--model", models["tag"]).stdout
    assert f"token accuracy {100 * et['accuracy']:.2f} %" in tt
    rows = {c[0]: c[1:4] for c in (re.split(r"\s*[│┃|]\s*", line.strip())
                                   for line in tt.splitlines()) if len(c) == 7}
    for typ, v in et["per_type"].items():   # the table shows what the JSON holds, in %
        assert rows[typ] == [f"{100 * v[k]:.2f}" for k in ("precision", "recall", "f1")]
    assert re.search(r"Best validation entity F1 \d+\.\d\d % at step", models["tag_out"])


# ------------------------------------------------ 7. options that do not apply
@pytest.mark.parametrize("args, option", [
    (["--task", "tag", "--prose"], "--prose"),
    (["--task", "tag", "--bptt", "10"], "--bptt"),
    (["--task", "tag", "--pool", "mean"], "--pool"),
    (["--task", "tag", "--tokenizer", "whitespace"], "--tokenizer"),
    (["--task", "classify", "--bptt", "10"], "--bptt"),
    (["--task", "classify", "--sample-every", "5"], "--sample-every"),
    (["--task", "classify", "--unk-token", "UNK"], "--unk-token"),
    (["--char-hidden", "4", "--char-embed", "4"], "--char-embed"),
])
def test_train_refuses_options_of_other_tasks(tmp_path, args, option):
    r = invoke("train", *args, "--steps", 1, "--hidden", 4, "--embed", 4, "--layers", 1,
               "--out", tmp_path / "m.npz")
    assert r.exit_code == 2, r.output
    assert f"{option} does not apply to --task" in r.stderr
    assert not (tmp_path / "m.npz").exists()


def test_the_library_refuses_them_too(tmp_path):
    with pytest.raises(charlm.CharlmError, match="--prose does not apply to --task tag"):
        charlm.train(task="tag", prose=True, steps=1, out=tmp_path / "t.npz")


@pytest.mark.parametrize("which, args, option", [
    ("tag", ["--per-line"], "--per-line"),
    ("tag", ["--label-column", "first"], "--label-column"),
    ("clf", ["--per-line"], "--per-line"),
    ("tag", ["--class", "pos=x.txt"], "--class"),
])
def test_eval_refuses_options_of_other_models(models, which, args, option):
    data = models["dev"] if which == "tag" else models["test"]
    r = invoke("eval", data, "--model", models[which], *args)
    assert r.exit_code == 2, r.output
    assert f"{option} does not apply to {models[which]}" in r.stderr


@pytest.fixture(scope="module")
def char_lms(tmp_path_factory):
    d = tmp_path_factory.mktemp("lms")
    text = d / "t.txt"
    text.write_text("".join(f"{a} {b} said\n" for a in NAMES for b in SURNAMES), "utf-8")
    small = ["--hidden", 4, "--embed", 4, "--layers", 1, "--steps", 2, "--bptt", 8,
             "--batch", 2]
    for name, extra in (("fwd", []), ("bwd", ["--reverse"])):
        r = invoke("train", text, *small, *extra, "--out", d / f"{name}.npz")
        assert r.exit_code == 0, r.output
    shutil.copy(d / "fwd.npz", d / "fwd2.npz")
    return d


def test_lm_features_with_spaces_forward_pairs_and_repeats(models, char_lms, tmp_path):
    d = char_lms
    train = models["dir"] / "train.conll"
    base = ["train", *TAG, train, "--steps", 2]
    r = invoke(*base, "--lm-features", f"{d / 'fwd.npz'}, {d / 'bwd.npz'}",
               "--out", tmp_path / "a.npz")
    assert r.exit_code == 0, r.output
    assert [rev for _, rev in charlm.load_model(tmp_path / "a.npz").model.features.lms] == \
        [False, True]
    assert "Warning" not in r.stderr
    r = invoke(*base, "--lm-features", f"{d / 'fwd.npz'},{d / 'fwd2.npz'}",
               "--out", tmp_path / "b.npz")
    assert r.exit_code == 0, r.output
    assert "Warning: all 2 --lm-features models read forwards" in r.stderr
    r = invoke(*base, "--lm-features", f"{d / 'fwd.npz'}, {d / 'fwd.npz'}",
               "--out", tmp_path / "c.npz")
    assert r.exit_code == 2 and "twice" in r.stderr
    assert not (tmp_path / "c.npz").exists()


def test_folds_say_that_the_limits_apply_to_every_run(models, tmp_path):
    r = invoke("train", *CLF, models["dir"] / "train.tsv", "--folds", 2, "--steps", 3,
               "--out", tmp_path / "f.npz")
    assert r.exit_code == 0, r.output
    notice = "each of the 3 runs trains under --steps 3"
    assert notice in r.stderr
    assert r.stderr.index(notice) < r.stderr.index("Fold 1/2")
    summary = json.loads((tmp_path / "f.cv.json").read_text())
    assert [f["steps"] for f in summary["per_fold"]] == [3, 3]
    assert charlm.load_model(tmp_path / "f.npz").train_meta["run"]["step"] == 3
    assert re.search(r"held-out accuracy \d+\.\d\d % ± \d+\.\d\d %", r.stdout)


# ------------------------------------------------------------- 8, 10. help
def test_train_help_has_panels_and_per_task_defaults():
    text = invoke("train", "-h").stdout
    from charlm.cli.train_cmd import PANELS, task_default_text
    titles = [line[:-1] for line in text.splitlines() if re.fullmatch(r"[A-Z][^:]*:", line)]
    assert titles == ["Arguments", *PANELS, "Options"]
    flat = " ".join(text.split())
    level = task_default_text("level", "char")
    assert level == ", ".join(f"{t} {m.DEFAULTS.get('level', 'char')}" for t, m in TASKS.items())
    assert f"[default: {level}]" in flat
    assert "models/tag.npz" in flat and "models/classify.npz" in flat      # --out
    assert "__label__" in flat and "review sentences" in flat               # the corpus
    assert re.search(r"--folds <int> .*apply to each fold and to that model", flat)


def test_per_task_defaults_follow_the_task_modules(monkeypatch):
    from charlm.cli.train_cmd import task_default_text
    monkeypatch.setitem(TASKS["tag"].DEFAULTS, "hidden", 128)
    monkeypatch.setitem(TASKS["classify"].DEFAULTS, "hidden", 64)
    assert task_default_text("hidden", 512) == "lm 512, tag 128, classify 64"
    assert task_default_text("cell", "lstm") is None      # the same for every task


def test_every_other_help_fits_a_screen():
    names = [c for c in ("sample", "score", "eval", "tag", "classify", "pairs", "gradients",
                         "info", "bench", "gradcheck")]
    for name in names + [None]:
        r = invoke(*([name] if name else []), "--help", env={"COLUMNS": "100"})
        lines = r.stdout.splitlines()
        assert len(lines) <= 50 and max(map(len, lines)) <= 100, (name, len(lines))
        for line in lines:      # one default per option, not a made-up one and typer's
            assert line.count("[default:") <= 1, line
    every = " ".join(invoke("gradients", "-h").stdout.split())
    assert "[default: about 20 rows]." in every and "rows]. [default: 0]" not in every


# ---------------------------------------------------- 9. what the errors say
def test_a_file_of_the_wrong_kind_is_named(models):
    r = invoke("eval", models["dev"], "--model", models["clf"])
    assert r.exit_code == 1
    assert "looks like a CoNLL file" in r.stderr and "is a classifier" in r.stderr
    r = invoke("eval", models["test"], "--model", models["tag"])
    assert r.exit_code == 1
    assert "does not look like a CoNLL file" in r.stderr and "is a tagger" in r.stderr


def test_info_says_a_reverse_model_reads_backwards(char_lms):
    r = invoke("info", char_lms / "bwd.npz")
    assert "read backwards" in " ".join(r.stdout.split())
    assert json.loads(invoke("info", char_lms / "bwd.npz", "--json").stdout)["reverse"]
    assert "backwards" not in invoke("info", char_lms / "fwd.npz").stdout
    assert not json.loads(invoke("info", char_lms / "fwd.npz", "--json").stdout)["reverse"]


def test_already_exists_speaks_to_each_caller(tmp_path, models):
    out = tmp_path / "clf.npz"
    shutil.copy(models["clf"], out)
    with pytest.raises(charlm.CharlmError) as e:
        charlm.train(models["test"], task="classify", level="word", steps=1, out=out)
    assert "resume=True" in str(e.value) and "force=True" in str(e.value)
    assert "--resume" not in str(e.value)
    r = invoke("train", *CLF, models["test"], "--steps", 1, "--out", out)
    assert r.exit_code == 1 and "--resume" in r.stderr and "resume=True" not in r.stderr


def test_python_progress_reports_a_classifier_per_example(models, tmp_path):
    import io

    from charlm.api import ProgressLines
    sink = io.StringIO()
    m = charlm.train(models["dir"] / "train.tsv", task="classify", level="word", hidden=8,
                     embed=8, layers=1, steps=10, eval_every=10, out=tmp_path / "p.npz",
                     callback=ProgressLines(sink))
    line = [x for x in sink.getvalue().splitlines() if x.startswith("step 10")][0]
    acc = m.train_meta["run"]["history"][-1]["valid_accuracy"]
    assert "nats/example" in line and f"accuracy {100 * acc:.2f} %" in line
    assert np.isfinite(acc)
