#!/usr/bin/env bash
# WikiText-2 quality in a fixed wall-clock budget, charlm side (issue 10, item 3): the README's
# row measured with --tokenizer whitespace (tokens are exactly WikiText's own, as in the
# PyTorch script). Recipe: 2x200 LSTM, embedding 200, dropout 0.2, batch 20, bptt 35,
# Adam 2e-3, vocabulary 10,000. The figure reported is what `charlm eval` prints on valid.txt.
#
# Reads $CORPORA (wikitext-2/train.txt, valid.txt) and writes $OUT/wt2_charlm.jsonl.
# BUDGET_SCALE (default 1) scales the 330 s training budget, e.g. 0.05 for a quick check.
# Whole job: about 330 s of training + ~1 min of vocabulary, final validation and eval.
set -euo pipefail
: "${CORPORA:?set CORPORA to the corpora folder}"
: "${OUT:?set OUT to the results folder}"
PY=${PYTHON:-python3}
SCALE=${BUDGET_SCALE:-1}
TRAIN_S=$($PY -c "print(max(5, round(330 * $SCALE)))")
EVAL_EVERY=$($PY -c "print(max(20, round(1500 * $SCALE)))")
WT="$CORPORA/wikitext-2"
VALID=${WT2_VALID:-$WT/valid.txt}   # a shorter file only to check the script quickly
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
RES="$OUT/wt2_charlm.jsonl"
START=$(date +%s)
$PY -m charlm train "$WT/train.txt" --valid "$VALID" --level word \
    --tokenizer whitespace --vocab-size 10000 --embed 200 --hidden 200 --layers 2 \
    --dropout 0.2 --batch 20 --bptt 35 --lr 2e-3 --time "${TRAIN_S}s" \
    --eval-every "$EVAL_EVERY" --out "$WORK/wt2.npz" 2> "$WORK/train.log" | tee "$WORK/summary.txt"
tail -n 3 "$WORK/train.log" >&2
$PY -m charlm eval "$VALID" --model "$WORK/wt2.npz" --json > "$WORK/eval.json"
$PY - "$WORK/wt2.npz" "$WORK/eval.json" "$TRAIN_S" "$START" > "$RES" <<'PYEOF'
import json, sys, time
from charlm.training import checkpoint
model, meta, _ = checkpoint.load(sys.argv[1])
ev = json.loads(open(sys.argv[2]).read())
run = meta["run"]
print(json.dumps({"type": "final", "impl": "charlm", "tokenizer": model.vocab.tokenizer,
                  "vocab": len(model.vocab), "budget_s": float(sys.argv[3]),
                  "valid_perplexity": ev["perplexity"], "valid_nll": ev["nll"],
                  "valid_tokens": ev["tokens"], "valid_oov": ev["oov"],
                  "tokens_seen": run["tokens_seen"], "steps": run["step"],
                  "best_step": run["best_step"], "train_best_valid_nll": run["best_valid"],
                  "train_seconds": round(run["elapsed"], 1),
                  "job_seconds": round(time.time() - float(sys.argv[4]), 1)}))
PYEOF
cat "$RES"
