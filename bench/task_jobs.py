"""Tagging and classification jobs: charlm's taggers and classifiers on real data (BTC,
WNUT-17, MR), against the same models in PyTorch (bench/torch_tagger.py,
bench/torch_classifier.py), with character words and charlm's own character LMs as features.

The tagger of every job: embedding 64, one layer of 128 LSTM units (per direction), batch 32,
Adam 3e-3, 80 s of training (times --scale), the best dev F1 kept (bench/protocol.py's
defaults, shared by both sides)."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from charlm.text import conll

from .harness import Col, Harness, median, num, pct

CHAR_WORDS = ["--char-embed", 25, "--char-hidden", 25]


def _budget(h: Harness) -> tuple[float, int]:
    """A tagger's training seconds and its evaluation interval, scaled."""
    return round(80 * h.scale, 1), max(5, round(100 * h.scale))


def _types(r: dict) -> str:
    return " · ".join(f"{t} {100 * v:.2f}" for t, v in sorted(r["f1_per_type"].items()))


TAG_COLS = [Col("run", lambda r: r["name"], True),
            Col("entity F1", lambda r: pct(r["f1"])),
            Col("P", lambda r: pct(r["precision"])),
            Col("R", lambda r: pct(r["recall"])),
            Col("steps", lambda r: num(r["steps"])),
            Col("train tok/s", lambda r: num(r["train_tokens_per_s"])),
            Col("F1 per type", _types, True)]


# --------------------------------------------------------------------- tag
def tag(h: Harness, a) -> None:
    """Unidirectional against bidirectional LSTM taggers on BTC and WNUT-17, the same budget;
    then the peak memory of the word-level language model on a batch of the same size."""
    B, every = _budget(h)
    rows = []
    for corpus in ("btc", "wnut17"):
        train, dev = h.tagging(corpus)
        for name, bi in (("uni", []), ("bi", ["--bidirectional"])):
            rows += h.run(h.py("tag_run.py", "--train", train, "--dev", dev, *bi,
                               "--name", f"{corpus}-{name}", "--budget", B,
                               "--eval-every", every))
    train, dev = h.tagging("btc")
    lm = h.run(h.py("tag_run.py", "--train", train, "--dev", dev, "--lm",
                    "--name", "btc-lm-memory"))[-1]
    h.table(rows, TAG_COLS[:4] + [
        Col("PER F1", lambda r: pct(r["f1_person"])),
        Col("token acc.", lambda r: pct(r["accuracy"])),
        *TAG_COLS[4:6],
        Col("tag tok/s", lambda r: num(r["tag_tokens_per_s"])),
        Col("peak RSS MB", lambda r: f"{r['peak_rss_mb']:.1f}")])
    bi = next(r for r in rows if r["name"] == "btc-bi")
    h.say(f"memory: the BTC BRNN tagger's peak RSS {bi['peak_rss_mb']:.1f} MB; the word LM on "
          f"the same batch (32 x {lm['bptt']}) {lm['peak_rss_mb']:.1f} MB "
          f"({bi['peak_rss_mb'] / lm['peak_rss_mb']:.2f} x)")


def tag_torch(h: Harness, a) -> None:
    """The PyTorch tagger's quality on BTC and WNUT-17 (compare with `tag`'s bidirectional
    rows), then three alternated pairs of 20 s runs on BTC: training and tagging tokens/s."""
    B, every = _budget(h)
    rows = []
    for corpus in ("btc", "wnut17"):
        train, dev = h.tagging(corpus)
        rows += h.run(h.py("torch_tagger.py", "--train", train, "--dev", dev, "--bidirectional",
                           "--budget", B, "--eval-every", every, "--name", f"{corpus}-bi-torch"))
    h.table(rows, TAG_COLS[:2] + [Col("PER F1", lambda r: pct(r["f1_person"])),
                                  Col("token acc.", lambda r: pct(r["accuracy"])),
                                  *TAG_COLS[4:6]])
    train, dev = h.tagging("btc")
    S = round(20 * h.scale, 1)
    speed = {"charlm": [], "torch": []}
    for k in range(3):          # alternated, so that the machine's drifts hit both alike
        for side, script in (("charlm", "tag_run.py"), ("torch", "torch_tagger.py")):
            speed[side] += h.run(h.py(script, "--train", train, "--dev", dev, "--bidirectional",
                                      "--budget", S, "--eval-every", 100000,
                                      "--name", f"speed-{side}-{k + 1}"))
    med = [{"side": s, **{k: median(r[k] for r in v)
                          for k in ("train_tokens_per_s", "tag_tokens_per_s")}}
           for s, v in speed.items()]
    med.append({"side": "ratio", **{k: med[0][k] / med[1][k] for k in med[0] if k != "side"}})
    h.table(med, [Col("BTC, medians of 3", lambda r: r["side"], True),
                  Col("train tok/s", lambda r: f"{r['train_tokens_per_s']:,.2f}"
                      if r["side"] == "ratio" else num(r["train_tokens_per_s"])),
                  Col("tag tok/s", lambda r: f"{r['tag_tokens_per_s']:,.2f}"
                      if r["side"] == "ratio" else num(r["tag_tokens_per_s"]))])


def tag_speed(h: Harness, a) -> None:
    """Tagging speed alone (bench/tag_speed.py): the BTC dev set tagged 7 times per process by
    an untrained bidirectional LSTM tagger, charlm and PyTorch in turn three times, on core 0
    with one thread each; medians."""
    train, dev = h.tagging("btc")
    runs = []
    for _ in range(3):
        for extra in ([], ["--torch"]):
            runs += h.run(h.py("tag_speed.py", "--train", train, "--dev", dev, *extra),
                          cores="0", threads=1)
    keys = ("predict_tokens_per_s", "tag_token_lists_tokens_per_s")
    row = {k: median(r[k] for r in runs if r["impl"] == "charlm" and k in r) for k in keys}
    torch = median(r["predict_tokens_per_s"] for r in runs if r["impl"] == "torch")
    h.table([{"what": "ids in, label ids out (charlm.tasks.tag.predict; PyTorch's predict)",
              "charlm": row["predict_tokens_per_s"], "torch": torch},
             {"what": "tokens in, Tagged out (Tagger.tag_token_lists, as `charlm tag`)",
              "charlm": row["tag_token_lists_tokens_per_s"], "torch": torch}],
            [Col("tagging, tokens/s", lambda r: r["what"], True),
             Col("charlm", lambda r: num(r["charlm"])),
             Col("PyTorch", lambda r: num(r["torch"])),
             Col("ratio", lambda r: f"{r['charlm'] / r['torch']:.2f}")])


# --------------------------------------------------------------------- character features
def _sentences(path: str) -> list[str]:
    """A CoNLL file's sentences, each its words joined by single spaces."""
    return [" ".join(s) for s in conll.read(path).tokens]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _train_lms(h: Harness, jobs: list[tuple], seconds: float, w: Path, log: list) -> None:
    """Character LMs (1 layer, 128 LSTM units) trained at once: (cores, text, name, reverse)."""
    running = []
    for cores, text, name, reverse in jobs:
        err = open(w / f"{name}.log", "w")
        running.append((name, err, h.start(
            h.charlm("train", text, "--layers", 1, "--hidden", 128, "--embed", 32,
                     "--dropout", 0.1, "--bptt", 128, "--batch", 32, "--valid-fraction", 0.05,
                     "--eval-every", 1000000, "--time", f"{seconds:g}s",
                     "--out", w / f"{name}.npz", *(["--reverse"] if reverse else [])),
            cores=cores, threads=1, stderr=err)))
    for name, err, r in running:
        h.wait(r, echo=False)
        err.close()
        for line in r.text.splitlines():       # charlm train's summary, on stdout
            if line.startswith(("Trained", "Best")):
                log.append(f"{name} LM: {line}")
                print(log[-1], flush=True)


def charfeat_options(p) -> None:
    p.add_argument("--data", choices=["wnut17", "btc"], default="wnut17")


def charfeat(h: Harness, a) -> None:
    """Three bidirectional taggers in the same budget: word-only; + character words; + the
    features of charlm's own forward and backward character LMs, trained for 60 s each (two at
    once on one core) on the tagging training text alone."""
    B, every = _budget(h)
    train, dev = h.tagging(a.data)
    base = ["--train", train, "--dev", dev, "--bidirectional", "--budget", B,
            "--eval-every", every]
    rows = h.run(h.py("tag_run.py", *base, "--name", "word-only"))
    rows += h.run(h.py("tag_run.py", *base, "--name", "char-words", *CHAR_WORDS))
    log: list[str] = []
    with tempfile.TemporaryDirectory() as work:
        w = Path(work)
        text = _write(w / "text.txt", _sentences(train))
        _train_lms(h, [(None, text, "fwd", False), (None, text, "bwd", True)],
                   max(1, round(60 * h.scale)), w, log)
        rows += h.run(h.py("tag_run.py", *base, "--name", "char+lm-features", *CHAR_WORDS,
                           "--lm-features", f"{w / 'fwd.npz'},{w / 'bwd.npz'}"))
    h.table(rows, TAG_COLS, title=f"{a.data}, dev set")
    for line in log:
        h.say(line)
    h.say(f"LM features computed once in {rows[-1]['lm_features_s']:.1f} s (outside the budget)")


def charword_torch(h: Harness, a) -> None:
    """The character-word tagger in charlm and in PyTorch, at the same time (charlm on core 0,
    PyTorch on core 1, one thread each), on WNUT-17 and on BTC."""
    B, every = _budget(h)
    rows = []
    for corpus in ("wnut17", "btc"):
        train, dev = h.tagging(corpus)
        args = ["--train", train, "--dev", dev, "--bidirectional", *CHAR_WORDS, "--budget", B,
                "--eval-every", every]
        mine = h.start(h.py("tag_run.py", *args, "--name", f"{corpus}-char-charlm"),
                       cores="0", threads=1)
        other = h.start(h.py("torch_tagger.py", *args, "--threads", 1,
                             "--name", f"{corpus}-char-torch"), cores="1", threads=1)
        rows += h.wait(mine) + h.wait(other)
    h.table(rows, TAG_COLS)


def lmtext_options(p) -> None:
    p.add_argument("--mode", choices=["pair", "big"], default="pair",
                   help="pair: 60 s LMs, two on one core, the tagging-text pair against the "
                        "WikiText-2 pair; big: one pair of 200 s LMs, a core each, then the "
                        "WNUT-17 and BTC taggers")
    p.add_argument("--data", choices=["wnut17", "btc"], default="wnut17", help="pair: corpus")
    p.add_argument("--text", choices=["wiki", "tagging"], default="wiki",
                   help="big: the LMs' text, WikiText-2 + both tagging texts, or the tagging "
                        "texts alone")


def lmtext(h: Harness, a) -> None:
    """How much unlabelled text helps the LM features of a character-word tagger: character LMs
    on the tagging text alone against LMs on WikiText-2's training text plus both tagging
    corpora's training text (lines shuffled together, seed 0)."""
    h.stem = f"lmtext-{a.mode}-{a.data if a.mode == 'pair' else a.text}"
    h.fresh()
    B, every = _budget(h)
    seconds = max(1, round((60 if a.mode == "pair" else 200) * h.scale))
    log: list[str] = []
    with tempfile.TemporaryDirectory() as work:
        w = Path(work)
        wiki = [x for x in Path(h.corpus("wikitext-2/train.txt")).read_text(
            encoding="utf-8").split("\n") if x.strip()]
        both = _sentences(h.tagging("wnut17")[0]) + _sentences(h.tagging("btc")[0])
        mixed = wiki + both
        random.Random(0).shuffle(mixed)
        random.Random(0).shuffle(both)
        texts = {"tagtext": _write(w / "tagtext.txt", _sentences(h.tagging(a.data)[0])),
                 "mixed": _write(w / "mixed.txt", mixed),
                 "bothtag": _write(w / "bothtag.txt", both)}

        def tagger(cores, corpus, name, lms):
            train, dev = h.tagging(corpus)
            return h.start(h.py("tag_run.py", "--train", train, "--dev", dev, "--bidirectional",
                                "--budget", B, "--eval-every", every, *CHAR_WORDS,
                                "--lm-features", ",".join(str(w / f"{x}.npz") for x in lms),
                                "--name", name), cores=cores, threads=1)

        if a.mode == "pair":
            _train_lms(h, [("0", texts["tagtext"], "tag-fwd", False),
                           ("0", texts["tagtext"], "tag-bwd", True),
                           ("1", texts["mixed"], "wiki-fwd", False),
                           ("1", texts["mixed"], "wiki-bwd", True)], seconds, w, log)
            runs = [tagger("0", a.data, f"{a.data}-lm-tagtext", ("tag-fwd", "tag-bwd")),
                    tagger("1", a.data, f"{a.data}-lm-wiki+tagtext", ("wiki-fwd", "wiki-bwd"))]
        else:
            text, label = ((texts["mixed"], "wiki+tagtext") if a.text == "wiki"
                           else (texts["bothtag"], "bothtagtext"))
            _train_lms(h, [("0", text, "big-fwd", False), ("1", text, "big-bwd", True)],
                       seconds, w, log)
            runs = [tagger("0", "wnut17", f"wnut17-lm-{label}-{seconds}s", ("big-fwd", "big-bwd")),
                    tagger("1", "btc", f"btc-lm-{label}-{seconds}s", ("big-fwd", "big-bwd"))]
        rows = [x for r in runs for x in h.wait(r)]
    h.table(rows, TAG_COLS + [Col("features s", lambda r: f"{r['lm_features_s']:.1f}")])
    for line in log:
        h.say(line)


# --------------------------------------------------------------------- classification
def mr_options(p) -> None:
    p.add_argument("--max-folds", type=int, default=0, help="only the first N folds (0: all)")


def _mr(h: Harness) -> list[str]:
    pos, neg = (h.corpus(x) for x in ("classify/mr/rt-polarity.pos",
                                      "classify/mr/rt-polarity.neg"))
    return ["--class", f"pos={pos}", "--class", f"neg={neg}"]


CV_COLS = [Col("model", lambda r: f"{'PyTorch' if r['impl'] == 'torch' else 'charlm'}, "
                                  f"{r['level']} level, "
                                  f"{'bidirectional' if r['bidirectional'] else 'unidirectional'}"
                                  " LSTM", True),
           Col("accuracy (mean ± sd)", lambda r: f"{100 * r['mean_accuracy']:.2f} ± "
                                                 f"{100 * r['sd_accuracy']:.2f}"),
           Col("folds", lambda r: r["folds_run"]),
           Col("train sentences/s", lambda r: num(r["train_sent_per_s"]))]


def mr(h: Harness, a) -> None:
    """Sentence polarity (MR), 10-fold cross-validation, 12 s of training per fold: charlm's
    word-level LSTM classifiers, unidirectional then bidirectional; then the bidirectional
    model's speed in charlm and in PyTorch, three alternated 5 s rounds."""
    budget = 12 * h.scale
    cap = int(175 * max(h.scale, 0.3))        # a run past this is cut off (its folds are kept)
    args = [*_mr(h), "--level", "word", "--embed", 64, "--hidden", 64, "--layers", 1,
            "--dropout", 0.5, "--lr", 5e-3, "--batch", 32, "--eval-every", 100, "--folds", 10,
            "--max-folds", a.max_folds, "--budget", budget, "--seed", 1234]
    rows = h.run(h.py("charlm_cv.py", *args), threads=h.threads or 2, timeout=cap)
    rows += h.run(h.py("charlm_cv.py", *args, "--bidirectional"), threads=h.threads or 2,
                  timeout=cap)
    h.table([r for r in rows if r.get("summary")], CV_COLS, title="MR, 10-fold")
    speed = h.run(h.py("classify_speed.py", *_mr(h), "--level", "word", "--embed", 64,
                       "--hidden", 64, "--bidirectional", "--lr", 5e-3, "--batch", 32,
                       "--rounds", 3, "--seconds", 5 * h.scale), threads=h.threads or 2,
                  timeout=55)
    s = [r for r in speed if r.get("summary")]
    h.table([{"what": "train", "c": x["charlm_train_sent_per_s"],
              "t": x["torch_train_sent_per_s"]} for x in s]
            + [{"what": "classify", "c": x["charlm_classify_sent_per_s"],
                "t": x["torch_classify_sent_per_s"]} for x in s],
            [Col("sentences/s, medians of 3", lambda r: r["what"], True),
             Col("charlm", lambda r: num(r["c"])), Col("PyTorch", lambda r: num(r["t"])),
             Col("ratio", lambda r: f"{r['c'] / r['t']:.2f}")])


def mr_mix(h: Harness, a) -> None:
    """MR with the folds and budget of `mr`: a char-level bidirectional LSTM in charlm, then
    the word-level bidirectional LSTM in PyTorch (the same data code, folds, vocabulary,
    batches and validation schedule)."""
    cap = int(200 * max(h.scale, 0.3))
    run = ["--layers", 1, "--dropout", 0.5, "--lr", 5e-3, "--batch", 32, "--eval-every", 100,
           "--folds", 10, "--max-folds", a.max_folds, "--budget", 12 * h.scale,
           "--seed", 1234, "--bidirectional"]
    rows = h.run(h.py("charlm_cv.py", *_mr(h), "--level", "char", "--embed", 16, "--hidden",
                      64, *run), threads=h.threads or 2, timeout=cap)
    rows += h.run(h.py("torch_classifier.py", *_mr(h), "--level", "word", "--embed", 64,
                       "--hidden", 64, *run), threads=h.threads or 2, timeout=cap)
    h.table([r for r in rows if r.get("summary")], CV_COLS, title="MR, 10-fold")
