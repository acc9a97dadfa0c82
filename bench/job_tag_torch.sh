#!/usr/bin/env bash
# Measurement job (about 6 minutes): the PyTorch reference tagger (bench/torch_tagger.py)
# against charlm's, bidirectional LSTM, embed 64, hidden 128, 1 layer, batch 32, Adam 3e-3.
# 1. quality: PyTorch on BTC and WNUT-17 train -> dev, 80 s of training each (compare with
#    the btc-bi / wnut17-bi rows of job_tag_charlm.sh, run in the same batch);
# 2. speed: three interleaved pairs (charlm, PyTorch) of 20 s runs on BTC, training and tagging
#    tokens/s; the medians and their ratios (charlm / PyTorch) at the end.
# Reads $CORPORA, writes $OUT/tag_torch.jsonl and $OUT/tag_torch.txt. BUDGET_SCALE scales the
# budgets (0.05 for a quick check); PYTHON picks python3.
set -euo pipefail
. "$(dirname "$0")/tagjob.sh"
C="$TAGGING"
Q="$B"
S=$("$PY" -c "print(round(20 * float('$SCALE'), 1))")
J="$OUT/tag_torch.jsonl"
: > "$J"
BTC=(--train "$C/btc/btc.train" --dev "$C/btc/btc.dev")
WNUT=(--train "$C/wnut17/wnut17train.conll" --dev "$C/wnut17/emerging.dev.conll")
"$PY" "$here/bench/torch_tagger.py" "${BTC[@]}" --bidirectional --budget "$Q" \
  --eval-every "$EVERY" --name btc-bi-torch | tee -a "$J"
"$PY" "$here/bench/torch_tagger.py" "${WNUT[@]}" --bidirectional --budget "$Q" \
  --eval-every "$EVERY" --name wnut17-bi-torch | tee -a "$J"
for k in 1 2 3; do   # interleaved, so that drifts of the machine hit both alike
  "$PY" "$here/bench/tag_run.py" "${BTC[@]}" --bidirectional --budget "$S" \
    --eval-every 100000 --name "speed-charlm-$k" | tee -a "$J"
  "$PY" "$here/bench/torch_tagger.py" "${BTC[@]}" --bidirectional --budget "$S" \
    --eval-every 100000 --name "speed-torch-$k" | tee -a "$J"
done
"$PY" - "$J" <<'PYEOF' | tee "$OUT/tag_torch.txt"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    if not r["name"].startswith("speed"):
        print(f"{r['name']:<16} F1 {100*r['f1']:6.2f}  persons {100*(r['f1_person'] or 0):6.2f}  "
              f"acc {100*r['accuracy']:6.2f}  steps {r['steps']}  "
              f"train {r['train_tokens_per_s']:,.0f} tok/s  tag {r['tag_tokens_per_s']:,.0f} tok/s"
              f"  threads {r['threads']}")
med = {}
for impl in ("charlm", "torch"):
    rs = [r for r in rows if r["name"].startswith(f"speed-{impl}")]
    med[impl] = {k: statistics.median(r[k] for r in rs)
                 for k in ("train_tokens_per_s", "tag_tokens_per_s", "f1")}
    print(f"speed {impl:<7} median of {len(rs)}: train {med[impl]['train_tokens_per_s']:,.0f} "
          f"tok/s  tag {med[impl]['tag_tokens_per_s']:,.0f} tok/s  (F1 {100*med[impl]['f1']:.2f} "
          "after the short run)")
print(f"ratio charlm / PyTorch: training "
      f"{med['charlm']['train_tokens_per_s']/med['torch']['train_tokens_per_s']:.2f} "
      f"(target >= 0.8), tagging "
      f"{med['charlm']['tag_tokens_per_s']/med['torch']['tag_tokens_per_s']:.2f}")
PYEOF
