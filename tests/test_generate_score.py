"""Scoring and sampling against the model's own softmax, worked out by hand with Model.step.

Models here are untrained float64 models over tiny vocabularies (``<EOS>``, ``<UNK>``, a, b, …)
with hand-set output biases where a test needs a particular shape of distribution.

Chi-square critical values are the 0.999 quantiles of the chi-square distribution (upper
critical values for α = 0.001 from the NIST/SEMATECH e-Handbook of Statistical Methods, table
1.3.6.7.4; checked against a series expansion of the regularized incomplete gamma function):
a correct sampler fails one of these tests with probability 0.001 for a given seed, and the
seeds are fixed.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from conftest import make_model
from typer.testing import CliRunner

from charlm.api import LanguageModel
from charlm.cli import app
from charlm.errors import CharlmError
from charlm.nn.sampling import draw, next_distribution, sample
from charlm.text.vocab import EOS_ID, UNK_ID
from charlm.training import checkpoint
from charlm.use.score import score, score_many

CHI2_999 = {1: 10.828, 4: 18.467, 24: 51.179}


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    return z - z.max() - math.log(np.exp(z - z.max()).sum())


def stepped_log_probs(model, ids, prime=()) -> tuple[np.ndarray, list]:
    """log P(y<t> | …) of each id, from a<0> = 0 with <EOS> as the first input, then ``prime``
    fed before the ids; one Model.step at a time. Also returns the full log-softmax rows."""
    state = model.zero_state(1)
    x = EOS_ID
    rows = []
    for tok in prime:
        _, state = model.step(np.array([x]), state)
        x = int(tok)
    out = []
    for y in ids:
        logits, state = model.step(np.array([x]), state)
        row = log_softmax(logits[0])
        rows.append(row)
        out.append(row[y])
        x = int(y)
    return np.array(out), rows


def chi2(counts: np.ndarray, probs: np.ndarray) -> float:
    n = counts.sum()
    expected = n * probs
    return float(((counts - expected) ** 2 / expected).sum())


def skewed_model(cell="gru", V=6, seed=0, b_y=None, scale=3.0):
    """A model whose next-token distributions are far from uniform."""
    model = make_model(cell, V=V, hidden=6, embed=4, layers=1, seed=seed)
    model.params["W_y"] *= scale
    if b_y is not None:
        model.params["b_y"][:] = b_y
    return model


# ---------------------------------------------------------------------- score
@pytest.mark.parametrize("cell,opts", [("rnn", {}), ("gru", {}), ("gru", {"simplified": True}),
                                       ("lstm", {}), ("lstm", {"peephole": True})])
def test_score_is_the_sum_of_stepped_log_softmax_values(cell, opts):
    model = make_model(cell, opts, V=7, layers=2, seed=3)
    text = "abzcae"                       # z is outside the vocabulary: <UNK>
    s = score(model, text)
    index = {t: i for i, t in enumerate(model.vocab.tokens)}
    ids = [index.get(ch, UNK_ID) for ch in text] + [EOS_ID]
    assert s.ids.tolist() == ids
    lp, _ = stepped_log_probs(model, ids)
    np.testing.assert_allclose(s.log_probs, lp, rtol=1e-12, atol=1e-13)
    assert s.log_prob == pytest.approx(math.fsum(lp), rel=1e-12)
    assert s.n_tokens == len(text) + 1
    assert s.n_oov == 1
    assert s.perplexity == pytest.approx(math.exp(-math.fsum(lp) / (len(text) + 1)), rel=1e-12)


def test_batched_scoring_equals_one_at_a_time():
    """Sentences of different lengths scored together (padded) give what each gives alone."""
    model = make_model("lstm", V=6, seed=4)
    texts = ["", "a", "abcd", "dcba" * 3, "zz", "b"]
    together = list(score_many(model, texts, batch=4))
    for t, r in zip(texts, together):
        alone = score(model, t)
        assert r.text == t
        assert r.ids.tolist() == alone.ids.tolist()
        np.testing.assert_allclose(r.log_probs, alone.log_probs, rtol=1e-12, atol=1e-13)
        lp, _ = stepped_log_probs(model, alone.ids)
        np.testing.assert_allclose(r.log_probs, lp, rtol=1e-12, atol=1e-13)


def test_scores_of_all_strings_and_the_unfinished_mass_sum_to_one():
    """Over the vocabulary <EOS>, <UNK>, a, b: every string of length ≤ L over the three
    non-<EOS> tokens (z stands for <UNK>), each ending in <EOS>, plus the probability that the
    first L + 1 tokens contain no <EOS>, is the whole probability mass."""
    L = 5
    model = make_model("gru", V=4, hidden=5, embed=3, layers=2, seed=5)
    assert model.vocab.tokens == ["<EOS>", "<UNK>", "a", "b"]
    model.params["b_y"][EOS_ID] += 0.5        # EOS neither rare nor certain
    strings = ["".join(p) for n in range(L + 1) for p in itertools.product("zab", repeat=n)]
    assert len(strings) == sum(3 ** n for n in range(L + 1))
    finished = math.fsum(math.exp(r.log_prob) for r in score_many(model, strings, batch=128))

    # P(no <EOS> among the first L + 1 tokens): all 3^(L+1) prefixes over <UNK>, a, b,
    # stepped as a batch with Model.step, level by level
    probs = np.ones(1)
    state = model.zero_state(1)
    x = np.array([EOS_ID])
    for _ in range(L + 1):
        logits, state = model.step(x, state)
        logp = np.array([log_softmax(row) for row in logits])
        nxt = np.array([UNK_ID, 2, 3])
        probs = (probs[:, None] * np.exp(logp[:, nxt])).reshape(-1)
        state = [np.repeat(s, 3, axis=0) for s in state]
        x = np.tile(nxt, len(x))
    assert len(probs) == 3 ** (L + 1)
    unfinished = math.fsum(probs)
    assert finished > 0.05 and unfinished > 0.05      # both parts matter
    assert abs(finished + unfinished - 1.0) < 1e-9


# ------------------------------------------------------------ sampling follows
def test_first_token_frequencies_follow_the_model():
    model = skewed_model(V=6, seed=6, b_y=[0.5, -1.0, 1.0, 0.0, -0.5, -1.5])
    _, rows = stepped_log_probs(model, [EOS_ID])
    p = np.exp(rows[0])
    keep = np.array([t for t in range(6) if t != UNK_ID])
    q = p[keep] / p[keep].sum()            # <UNK> removed and the rest renormalised
    rng = np.random.default_rng(2024)
    n = 4000
    counts = np.zeros(6)
    for _ in range(n):
        s = sample(model, rng, length=1, stop_at_eos=False)
        counts[s.ids[0]] += 1
    assert counts[UNK_ID] == 0
    assert chi2(counts[keep], q) < CHI2_999[4]
    # the test has power: sampling uniformly would be rejected by a wide margin
    assert chi2(n * q, np.full(5, 0.2)) > 5 * CHI2_999[4]


def test_two_token_frequencies_follow_the_chained_conditionals():
    model = skewed_model(cell="lstm", V=6, seed=7, b_y=[0.3, -0.5, 0.8, 0.2, -0.4, -0.2],
                         scale=5.0)
    keep = [t for t in range(6) if t != UNK_ID]
    joint = {}
    for a in keep:
        _, rows = stepped_log_probs(model, [a, EOS_ID])
        p1, p2 = np.exp(rows[0]), np.exp(rows[1])
        p1 = p1[keep] / p1[keep].sum()
        p2 = p2[keep] / p2[keep].sum()
        for j, b in enumerate(keep):
            joint[(a, b)] = p1[keep.index(a)] * p2[j]
    pairs = list(joint)
    probs = np.array([joint[k] for k in pairs])
    assert abs(probs.sum() - 1) < 1e-12
    rng = np.random.default_rng(99)
    n = 5000
    counts = dict.fromkeys(pairs, 0)
    for _ in range(n):
        s = sample(model, rng, length=2, stop_at_eos=False)
        counts[tuple(s.ids)] += 1
    c = np.array([counts[k] for k in pairs], dtype=float)
    assert n * probs.min() > 5                       # the chi-square approximation holds
    assert chi2(c, probs) < CHI2_999[24]
    # power: the first-token marginal with the second drawn independently from it would not do
    marg = np.array([sum(joint[(a, b)] for b in keep) for a in keep])
    indep = np.outer(marg, marg).reshape(-1)
    assert chi2(n * probs, indep) > 2 * CHI2_999[24]


@pytest.mark.parametrize("V", [2, 7, 65, 10_000])
def test_draw_takes_what_generator_choice_takes(V):
    # draw() is choice(V, p=p) without its checks: the same index from the same stream, for
    # skewed and sparse distributions alike (zeros where top-k or <UNK> removal put them)
    gen = np.random.default_rng(V)
    for trial in range(200):
        p = gen.random(V) ** 4
        p[gen.random(V) < 0.3] = 0.0
        p[gen.integers(V)] = 1.0
        p /= p.sum()
        ours, numpys = np.random.default_rng(trial), np.random.default_rng(trial)
        for _ in range(5):
            assert draw(p, ours) == int(numpys.choice(V, p=p))


def test_unk_is_never_drawn_unless_allowed():
    b_y = np.zeros(6)
    b_y[UNK_ID] = 3.0
    model = skewed_model(V=6, seed=8, b_y=b_y, scale=1.0)
    _, rows = stepped_log_probs(model, [EOS_ID])
    p_unk = math.exp(rows[0][UNK_ID])
    assert 0.5 < p_unk < 0.99                    # <UNK> is the likeliest first token
    rng = np.random.default_rng(1)
    s = sample(model, rng, length=3000, stop_at_eos=False)
    assert len(s.ids) == 3000 and UNK_ID not in s.ids
    n = 2000
    first = [sample(model, rng, length=1, allow_unk=True, stop_at_eos=False).ids[0]
             for _ in range(n)]
    k = first.count(UNK_ID)
    assert abs(k - n * p_unk) < 5 * math.sqrt(n * p_unk * (1 - p_unk))


def test_same_seed_same_text_and_log_prob():
    lm = LanguageModel(skewed_model(V=7, seed=9))
    a = [lm.sample(seed=11, length=40) for _ in range(2)]
    b = lm.sample(seed=12, length=40)
    assert a[0] == a[1]
    assert a[0] != b
    s1 = sample(lm.model, np.random.default_rng(5), length=30, stop_at_eos=False)
    s2 = sample(lm.model, np.random.default_rng(5), length=30, stop_at_eos=False)
    assert s1.ids == s2.ids and s1.log_prob == s2.log_prob


def test_sample_log_prob_is_the_score_of_the_sampled_text():
    model = skewed_model(V=6, seed=10, b_y=[1.0, -2.0, 0.0, 0.0, 0.0, 0.0])
    rng = np.random.default_rng(3)
    done = 0
    for _ in range(20):
        s = sample(model, rng, length=50)
        if not s.stopped_at_eos:
            continue
        done += 1
        text = model.vocab.decode(s.ids)
        assert s.log_prob == pytest.approx(score(model, text).log_prob, rel=1e-10, abs=1e-12)
    assert done >= 10


def greedy_by_hand(model, length, prime=(), allow_unk=False):
    state = model.zero_state(1)
    x = EOS_ID
    for tok in prime:
        _, state = model.step(np.array([x]), state)
        x = int(tok)
    ids, lp = [], 0.0
    for _ in range(length):
        logits, state = model.step(np.array([x]), state)
        z = logits[0].astype(np.float64)
        masked = z.copy()
        if not allow_unk:
            masked[UNK_ID] = -np.inf
        y = int(np.argmax(masked))
        lp += log_softmax(z)[y]
        if y == EOS_ID:
            return ids, lp, True
        ids.append(y)
        x = y
    return ids, lp, False


def test_temperature_zero_is_the_argmax_path():
    b_y = np.zeros(7)
    b_y[UNK_ID] = 4.0          # the unmasked argmax would be <UNK>
    b_y[EOS_ID] = -3.0
    model = skewed_model(V=7, seed=11, b_y=b_y)
    ids, lp, stopped = greedy_by_hand(model, 25)
    assert len(ids) >= 5 and UNK_ID not in ids
    for seed in (0, 1):
        s = sample(model, np.random.default_rng(seed), length=25, temperature=0)
        assert s.ids == ids and s.stopped_at_eos == stopped
        assert s.log_prob == pytest.approx(lp, rel=1e-12)
    s = sample(model, np.random.default_rng(0), length=25, temperature=0, allow_unk=True)
    ids_unk, _, _ = greedy_by_hand(model, 25, allow_unk=True)
    assert s.ids == ids_unk and s.ids[0] == UNK_ID


def test_a_dominant_unk_at_low_temperature_still_leaves_a_distribution():
    # <UNK> outweighs every other token by e^40: at temperature 0.01 the others' tempered
    # weights, taken relative to <UNK>, would all underflow to 0. Relative to the best allowed
    # token they do not, and sampling is then (almost surely) the greedy path without <UNK>.
    b_y = np.zeros(7)
    b_y[UNK_ID] = 40.0
    b_y[EOS_ID] = -3.0
    model = skewed_model(V=7, seed=11, b_y=b_y)
    ids, _, _ = greedy_by_hand(model, 25)
    s = sample(model, np.random.default_rng(0), length=25, temperature=0.01)
    assert s.ids == ids and UNK_ID not in s.ids


@pytest.mark.parametrize("temperature,top_k,top_p,allow_unk", [
    (1.0, 0, 1.0, False), (0.7, 0, 1.0, True), (1.3, 3, 1.0, False), (1.0, 0, 0.8, False),
    (0.0, 0, 1.0, False)])
def test_next_distribution_is_the_same_from_logits_as_from_log_probs(temperature, top_k, top_p,
                                                                     allow_unk):
    # the sampler hands it the max-shifted logits; score's log-softmax is the same up to a shift
    z = np.random.default_rng(4).normal(size=9) * 3
    logp = log_softmax(z)
    want = next_distribution(logp, temperature, top_k, top_p, allow_unk)
    for shifted in (z - z.max(), z + 50.0):
        got = next_distribution(shifted, temperature, top_k, top_p, allow_unk)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert want.sum() == pytest.approx(1.0) and (allow_unk or want[UNK_ID] == 0.0)


@pytest.mark.parametrize("p", [np.zeros(5), np.full(5, np.nan), np.array([1.0, np.inf, 0.0])])
def test_draw_refuses_what_is_not_a_distribution(p):
    with pytest.raises(CharlmError, match="no distribution to draw from"):
        draw(p, np.random.default_rng(0))


def test_prime_is_fed_first():
    model = skewed_model(V=7, seed=12, b_y=[-3.0, 0, 0, 0, 0, 0, 0])
    lm = LanguageModel(model)
    prime_ids = [2, 3, 4]
    text = lm.sample(prime="abc", temperature=0, length=12)
    ids, lp, _ = greedy_by_hand(model, 12, prime=prime_ids)
    assert text == "abc" + model.vocab.decode(ids)
    # without the prime the path differs, so the prime did condition it
    assert greedy_by_hand(model, 12)[0] != ids
    # a drawn sample's log-probability is conditional on the prime
    s = sample(model, np.random.default_rng(4), length=12, prime_ids=np.array(prime_ids),
               stop_at_eos=False)
    lp_hand, _ = stepped_log_probs(model, s.ids, prime=prime_ids)
    assert s.log_prob == pytest.approx(math.fsum(lp_hand), rel=1e-12)


def nucleus(row: np.ndarray, top_k: int = 0, top_p: float = 1.0) -> set[int]:
    """The tokens a filtered draw may produce, from a log-softmax row: <UNK> out, then the k
    likeliest, then the smallest set of likeliest tokens whose mass reaches top_p."""
    p = np.exp(row)
    p[UNK_ID] = 0.0
    p /= p.sum()
    order = sorted(range(len(p)), key=lambda t: -p[t])
    order = [t for t in order if p[t] > 0]
    if top_k:
        order = order[:top_k]
    mass = sum(p[t] for t in order)
    keep, acc = [], 0.0
    for t in order:
        keep.append(t)
        acc += p[t] / mass
        if acc >= top_p:
            break
    return set(keep)


@pytest.mark.parametrize("top_k,top_p", [(2, 1.0), (3, 1.0), (0, 0.6)])
def test_top_k_and_top_p_restrict_every_step(top_k, top_p):
    model = skewed_model(V=8, seed=13, b_y=[-1.0, 2.0, 0, 0.3, 0.6, -0.2, 0.1, -0.5])
    rng = np.random.default_rng(7)
    used = set()
    for _ in range(30):
        s = sample(model, rng, length=15, top_k=top_k, top_p=top_p, stop_at_eos=False)
        _, rows = stepped_log_probs(model, s.ids)
        for t, row in enumerate(rows):
            allowed = nucleus(row, top_k, top_p)
            assert s.ids[t] in allowed, (t, s.ids)
            used.add(len(allowed))
    assert max(used) < 7          # the filters did remove tokens


def test_top_k_frequencies_are_the_renormalised_top_k():
    model = skewed_model(V=6, seed=14, b_y=[0.2, 1.5, 0.9, 0.7, 0.0, -0.3])
    _, rows = stepped_log_probs(model, [EOS_ID])
    p = np.exp(rows[0])
    p[UNK_ID] = 0
    top2 = list(np.argsort(-p)[:2])
    q = p[top2] / p[top2].sum()
    rng = np.random.default_rng(8)
    n = 3000
    first = [sample(model, rng, length=1, top_k=2, stop_at_eos=False).ids[0] for _ in range(n)]
    assert set(first) == set(top2)
    counts = np.array([first.count(t) for t in top2], dtype=float)
    assert chi2(counts, q) < CHI2_999[1]


def test_top_p_frequencies_are_the_renormalised_nucleus():
    """The nucleus is the smallest set of likeliest tokens whose mass reaches top_p: the
    token that crosses the threshold is in it."""
    model = skewed_model(V=6, seed=16, b_y=[0.2, 1.5, 0.9, 0.7, 0.0, -0.3])
    _, rows = stepped_log_probs(model, [EOS_ID])
    p = np.exp(rows[0])
    p[UNK_ID] = 0
    p /= p.sum()
    order = list(np.argsort(-p))
    top_p = (p[order[0]] + p[order[1]] / 2)        # halfway into the second likeliest
    allowed = order[:2]
    assert nucleus(rows[0], 0, top_p) == set(allowed)
    q = p[allowed] / p[allowed].sum()
    rng = np.random.default_rng(9)
    n = 3000
    first = [sample(model, rng, length=1, top_p=top_p, stop_at_eos=False).ids[0]
             for _ in range(n)]
    assert set(first) == set(allowed)
    counts = np.array([first.count(t) for t in allowed], dtype=float)
    assert chi2(counts, q) < CHI2_999[1]


# --------------------------------------------- through the command line
@pytest.fixture
def model_file(tmp_path):
    b_y = np.zeros(7)
    b_y[UNK_ID] = 3.0
    b_y[EOS_ID] = -1.0
    model = skewed_model(V=7, seed=15, b_y=b_y, scale=1.5)
    path = tmp_path / "m.npz"
    checkpoint.save(path, model)
    return path


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_cli_sample_rejects_unk_unless_allowed(model_file):
    runner = CliRunner()
    base = ["sample", "--model", str(model_file), "--json", "--no-stop", "--length", "300",
            "--seed", "3", "-n", "3"]
    res = runner.invoke(app, base)
    assert res.exit_code == 0, res.stderr
    rows = json_lines(res.stdout)
    assert len(rows) == 3
    assert all(len(r["tokens"]) == 300 and "<UNK>" not in r["tokens"] for r in rows)
    res = runner.invoke(app, base + ["--allow-unk"])
    assert res.exit_code == 0, res.stderr
    assert any("<UNK>" in r["tokens"] for r in json_lines(res.stdout))


def test_cli_sample_same_seed_same_text_and_greedy(model_file):
    runner = CliRunner()
    args = ["sample", "--model", str(model_file), "--json", "-n", "2", "--length", "30"]
    a = runner.invoke(app, args + ["--seed", "4"])
    b = runner.invoke(app, args + ["--seed", "4"])
    assert a.exit_code == b.exit_code == 0
    assert a.stdout == b.stdout
    # the command line's stream of samples is one seeded generator, as the library's is
    model, _, _ = checkpoint.load(model_file)
    rng = np.random.default_rng(4)
    expected = [sample(model, rng, length=30) for _ in range(2)]
    got = json_lines(a.stdout)
    assert [g["tokens"] for g in got] == [[model.vocab.tokens[t] for t in s.ids]
                                          for s in expected]
    for g, s in zip(got, expected):
        assert g["log_prob"] == pytest.approx(s.log_prob, rel=1e-12)
    # --temperature 0 is the argmax path, the same for any seed
    g = runner.invoke(app, ["sample", "--model", str(model_file), "--json", "--temperature",
                            "0", "--length", "30", "--prime", "ab"])
    assert g.exit_code == 0, g.stderr
    ids, lp, stopped = greedy_by_hand(model, 30, prime=[2, 3])
    row = json_lines(g.stdout)[0]
    assert row["text"] == "ab" + model.vocab.decode(ids)
    assert row["stopped_at_eos"] == stopped
    assert row["log_prob"] == pytest.approx(lp, rel=1e-12)


def test_eval_stream_oov_figures_are_the_unk_targets_of_the_same_windows(tmp_path, model_file):
    """Stream mode: perplexity without OOV positions, recomputed by hand from the full
    log-softmax of the same windows and state (Model.forward, no inference path)."""
    from charlm.nn.layers import log_softmax as rows_log_softmax
    from charlm.tasks.stream import Batches
    lines = ["abc zz", "cab q", "fedcba", "bad cafe xx", "a"] * 9
    from charlm.api import load_model
    lm = load_model(model_file)
    text = "\n".join(lines) + "\n"
    e = lm.evaluate(text)
    from charlm.text.vocab import sequence_chunks
    ids = lm.vocab.encode_chunks(sequence_chunks(text, prose=False, level=lm.vocab.level))
    cfg = lm.train_meta.get("config") or {}
    m = max(1, min(int(cfg.get("eval_batch", 32)), len(ids)))
    batches = Batches.from_stream(ids, m, int(cfg.get("bptt", 128)))
    state, total, unk_nll, n_unk, n = lm.model.zero_state(m), 0.0, 0.0, 0, 0
    for k in range(len(batches)):
        X, Y = batches.window(k)
        logits, state, _ = lm.model.forward(X, state)
        logp = np.take_along_axis(rows_log_softmax(logits.astype(np.float64)),
                                  Y.reshape(-1, 1).astype(np.intp), axis=1)[:, 0]
        at = Y.reshape(-1) == UNK_ID
        total -= logp.sum()
        unk_nll -= logp[at].sum()
        n_unk += int(at.sum())
        n += Y.size
    assert n_unk > 0 and e["oov"] == n_unk and e["tokens"] == n
    assert e["perplexity_without_oov"] == pytest.approx(
        math.exp((total - unk_nll) / (n - n_unk)), rel=1e-5)
    assert lm.perplexity(text) == pytest.approx(math.exp(total / n), rel=1e-5)


def test_eval_per_line_perplexity_equals_the_mean_nll_of_score(tmp_path, model_file):
    lines = ["abc", "cab zz", "a", "fedcba", "bad cafe", "q"]
    f = tmp_path / "held.txt"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    runner = CliRunner()
    # --per-line: every line on its own from a<0> = 0, exactly as score does it
    ev = runner.invoke(app, ["eval", str(f), "--model", str(model_file), "--json",
                             "--per-line"])
    sc = runner.invoke(app, ["score", "--file", str(f), "--model", str(model_file), "--json",
                             "--per-token"])
    assert ev.exit_code == 0, ev.stderr
    assert sc.exit_code == 0, sc.stderr
    [e] = json_lines(ev.stdout)
    rows = json_lines(sc.stdout)
    assert [r["text"] for r in rows] == lines
    n = sum(r["n_tokens"] for r in rows)
    nll = -math.fsum(r["log_prob"] for r in rows) / n
    assert e["tokens"] == n == sum(len(t) + 1 for t in lines)
    assert e["oov"] == sum(r["n_oov"] for r in rows) == sum(c not in "abcde" for t in lines
                                                            for c in t)
    assert e["sequences"] == len(lines)
    assert e["nll"] == pytest.approx(nll, rel=1e-12)
    assert e["perplexity"] == pytest.approx(math.exp(nll), rel=1e-12)
    # char level: a token is a character (and <EOS> a line break)
    assert e["bits_per_char"] == pytest.approx(nll / math.log(2), rel=1e-12)
    in_vocab = [t["log_prob"] for r in rows for t in r["tokens"] if t["token"] != "<UNK>"]
    assert e["perplexity_without_oov"] == pytest.approx(
        math.exp(-math.fsum(in_vocab) / len(in_vocab)), rel=1e-12)
    # the per-token figures add up to the sentence's
    for r in rows:
        assert r["log_prob"] == pytest.approx(math.fsum(t["log_prob"] for t in r["tokens"]),
                                              rel=1e-12)
