#!/usr/bin/env bash
# WikiText-2 quality in a fixed wall-clock budget, PyTorch side (issue 10, item 3): the
# reference script on the same recipe and budget as bench/job_wt2_charlm.sh (2x200 LSTM,
# embedding 200, dropout 0.2, batch 20, bptt 35, Adam 2e-3, vocabulary 10,000; its tokens are
# the whitespace-separated pieces, as charlm's --tokenizer whitespace).
#
# Reads $CORPORA and $TORCH_QUALITY (default $CORPORA/../bench/torch_quality.py); writes
# $OUT/wt2_torch.jsonl. BUDGET_SCALE (default 1) scales the 330 s budget.
set -euo pipefail
: "${CORPORA:?set CORPORA to the corpora folder}"
: "${OUT:?set OUT to the results folder}"
PY=${PYTHON:-python3}
TQ=${TORCH_QUALITY:-$CORPORA/../bench/torch_quality.py}
SCALE=${BUDGET_SCALE:-1}
BUDGET=$($PY -c "print(max(5, round(330 * $SCALE)))")
EVERY=$($PY -c "print(max(5, round(110 * $SCALE)))")
WT="$CORPORA/wikitext-2"
VALID=${WT2_VALID:-$WT/valid.txt}   # a shorter file only to check the script quickly
mkdir -p "$OUT"
RES="$OUT/wt2_torch.jsonl"
START=$(date +%s)
$PY "$TQ" --level word --vocab-size 10000 --data "$WT/train.txt" --valid "$VALID" \
    --embed 200 --hidden 200 --layers 2 --dropout 0.2 --batch 20 --bptt 35 --lr 2e-3 \
    --budget-seconds "$BUDGET" --eval-every-seconds "$EVERY" --eval-chunk 128 --prime the \
    --tag wt2-torch --threads "$(nproc)" > "$RES.tmp"   # one thread per CPU it may use
$PY - "$RES.tmp" "$BUDGET" "$START" > "$RES" <<'PYEOF'
import json, math, sys, time
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
final = [r for r in rows if r.get("type") == "final"][-1]
best = final["best_val_loss"]
print(json.dumps({"type": "final", "impl": "torch", "budget_s": float(sys.argv[2]),
                  "valid_perplexity": math.exp(best), "valid_nll": best,
                  "tokens_seen": final["train_tokens_seen"],
                  "best_tokens_seen": final["best_train_tokens_seen"],
                  "job_seconds": round(time.time() - float(sys.argv[3]), 1)}))
print(json.dumps({k: v for k, v in final.items() if k != "sample"}))
PYEOF
rm -f "$RES.tmp"
cat "$RES"
