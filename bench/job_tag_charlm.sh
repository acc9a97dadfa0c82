#!/usr/bin/env bash
# Measurement job (about 6 minutes): charlm taggers on BTC and WNUT-17, train -> dev.
# A unidirectional and a bidirectional LSTM of the same size (embed 64, hidden 128, 1 layer),
# the same wall-clock training budget each (80 s): dev entity F1 overall and for persons,
# token accuracy, training and tagging tokens/s, peak RSS; then the peak RSS of the word-level
# language model on the same batch (32 sentences x the longest tagging batch's steps).
# Reads $CORPORA (a copy of shared/corpora) and writes $OUT/tag_charlm.jsonl (one JSON line
# per run) and $OUT/tag_charlm.txt (the table printed at the end).
# BUDGET_SCALE=0.05 scales every training budget (for a quick check); PYTHON picks python3.
set -euo pipefail
. "$(dirname "$0")/tagjob.sh"
C="$TAGGING"
J="$OUT/tag_charlm.jsonl"
: > "$J"
run() { "$PY" "$here/bench/tag_run.py" "$@" --budget "$B" --eval-every "$EVERY" | tee -a "$J"; }
for set in btc wnut17; do
  if [ $set = btc ]; then tr="$C/btc/btc.train"; dv="$C/btc/btc.dev";
  else tr="$C/wnut17/wnut17train.conll"; dv="$C/wnut17/emerging.dev.conll"; fi
  run --train "$tr" --dev "$dv" --name "$set-uni"
  run --train "$tr" --dev "$dv" --name "$set-bi" --bidirectional
done
"$PY" "$here/bench/tag_run.py" --train "$C/btc/btc.train" --dev "$C/btc/btc.dev" --lm \
  --name btc-lm-memory | tee -a "$J"
"$PY" - "$J" <<'PYEOF' | tee "$OUT/tag_charlm.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
tag = [r for r in rows if r["mode"] == "tag"]
lm = next(r for r in rows if r["mode"] == "lm")
print(f"{'run':<12} {'F1':>6} {'F1 per':>7} {'P':>6} {'R':>6} {'acc':>6} {'steps':>6} "
      f"{'train tok/s':>11} {'tag tok/s':>10} {'RSS MB':>7}")
for r in tag:
    print(f"{r['name']:<12} {100*r['f1']:6.2f} {100*(r['f1_person'] or 0):7.2f} "
          f"{100*r['precision']:6.2f} {100*r['recall']:6.2f} {100*r['accuracy']:6.2f} "
          f"{r['steps']:6d} {r['train_tokens_per_s']:11,.0f} {r['tag_tokens_per_s']:10,.0f} "
          f"{r['peak_rss_mb']:7.1f}")
for s in ("btc", "wnut17"):
    u, b = (next(r for r in tag if r["name"] == f"{s}-{d}") for d in ("uni", "bi"))
    print(f"{s}: bidirectional - unidirectional = {100*(b['f1']-u['f1']):+.2f} F1 points "
          f"(persons {100*((b['f1_person'] or 0)-(u['f1_person'] or 0)):+.2f})")
btc_bi = next(r for r in tag if r["name"] == "btc-bi")
print(f"memory: BTC BRNN tagger peak RSS {btc_bi['peak_rss_mb']:.1f} MB; word LM on the same "
      f"batch (32 x {lm['bptt']}) {lm['peak_rss_mb']:.1f} MB; ratio "
      f"{btc_bi['peak_rss_mb']/lm['peak_rss_mb']:.2f} (target <= 2)")
PYEOF
