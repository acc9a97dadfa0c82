#!/usr/bin/env bash
# Measurement job (about 3 minutes): the character-word tagger in charlm and in PyTorch
# (bench/torch_tagger.py --char-embed/--char-hidden), side by side on WNUT-17 and on BTC,
# train -> dev. Bidirectional LSTM tagger, embed 64, hidden 128, 1 layer, batch 32, Adam 3e-3;
# character words: character embedding 25, character BiLSTM 25 per direction; 80 s of
# training per row, the best dev F1 kept. For each corpus the two run at the same time, charlm
# pinned to core 0 and PyTorch to core 1, one thread each. Dev entity F1 overall and per type,
# training tokens/s (inside training steps).
# Reads $CORPORA, writes $OUT/charword_torch.jsonl and $OUT/charword_torch.txt.
# BUDGET_SCALE=0.05 scales the budgets; PYTHON picks python3.
set -euo pipefail
. "$(dirname "$0")/tagjob.sh"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
C="$TAGGING"
J="$OUT/charword_torch.jsonl"
: > "$J"
W="$(mktemp -d)"
CHAR=(--bidirectional --char-embed 25 --char-hidden 25 --budget "$B" --eval-every "$EVERY")
for set in wnut17 btc; do
  if [ $set = btc ]; then D=(--train "$C/btc/btc.train" --dev "$C/btc/btc.dev");
  else D=(--train "$C/wnut17/wnut17train.conll" --dev "$C/wnut17/emerging.dev.conll"); fi
  taskset -c 0 "$PY" "$here/bench/tag_run.py" "${D[@]}" "${CHAR[@]}" \
    --name "$set-char-charlm" > "$W/charlm.json" &
  taskset -c 1 "$PY" "$here/bench/torch_tagger.py" "${D[@]}" "${CHAR[@]}" --threads 1 \
    --name "$set-char-torch" > "$W/torch.json" &
  wait
  cat "$W/charlm.json" "$W/torch.json" | tee -a "$J"
done
rm -rf "$W"
"$PY" - "$J" <<'PYEOF' | tee "$OUT/charword_torch.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    types = " ".join(f"{t} {100*v:.2f}" for t, v in sorted(r["f1_per_type"].items()))
    print(f"{r['name']:<20} F1 {100*r['f1']:6.2f}  P {100*r['precision']:6.2f}  "
          f"R {100*r['recall']:6.2f}  steps {r['steps']:5d} (best {r['best_step']})  "
          f"train {r['train_tokens_per_s']:,.0f} tok/s  | {types}")
for s in ("wnut17", "btc"):
    a, b = (next(r for r in rows if r["name"] == f"{s}-char-{i}") for i in ("charlm", "torch"))
    print(f"{s}: charlm - PyTorch = {100*(a['f1']-b['f1']):+.2f} F1 points; training speed "
          f"charlm / PyTorch = {a['train_tokens_per_s']/b['train_tokens_per_s']:.2f}")
PYEOF
