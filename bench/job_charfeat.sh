#!/usr/bin/env bash
# Measurement job (about 6 minutes): character-aware tagging on WNUT-17 (DATA=btc: the Broad
# Twitter Corpus), train -> dev.
# Three BiLSTM taggers (embed 64, hidden 128, 1 layer, as job_tag_charlm.sh), 80 s of
# training each: word-only; + character words (--char-embed 25 --char-hidden 25); + character
# words and the features of charlm's own forward and backward character LMs (1-layer LSTM 128,
# trained here for 60 s each on the tagging training text alone, the two at once on one core
# each). Dev entity F1 overall and per type, training tokens/s (inside training steps).
# Reads $CORPORA, writes $OUT/charfeat.jsonl (one JSON line per run) and $OUT/charfeat.txt
# (the table printed at the end). BUDGET_SCALE=0.05 scales every budget; PYTHON picks python3.
set -euo pipefail
. "$(dirname "$0")/tagjob.sh"
DATA="${DATA:-wnut17}"
C="$TAGGING/$DATA"
LMB=$(scaled 60)
case "$DATA" in
  wnut17) TR="$C/wnut17train.conll"; DV="$C/emerging.dev.conll" ;;
  btc) TR="$C/btc.train"; DV="$C/btc.dev" ;;
  *) echo "DATA must be wnut17 or btc" >&2; exit 2 ;;
esac
W="$(mktemp -d)"
J="$OUT/charfeat.jsonl"
: > "$J"
run() { "$PY" "$here/bench/tag_run.py" --train "$TR" --dev "$DV" --bidirectional \
          --budget "$B" --eval-every "$EVERY" "$@" | tee -a "$J"; }
run --name word-only
run --name char-words --char-embed 25 --char-hidden 25
# the LMs' text: each training sentence's words joined by single spaces, one per line
"$PY" -c "import sys; from charlm.text import conll
print('\n'.join(' '.join(s) for s in conll.read(sys.argv[1]).tokens))" "$TR" > "$W/text.txt"
lm() { OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 "$PY" -m charlm train \
         "$W/text.txt" --layers 1 --hidden 128 --embed 32 --dropout 0.1 --bptt 128 --batch 32 \
         --valid-fraction 0.05 --eval-every 1000000 --time "${LMB}s" --out "$W/$1.npz" \
         "${@:2}" 2>"$W/$1.log" | grep -E "^(Trained|Best)" | sed "s/^/$1 LM: /"; }
lm fwd & lm bwd --reverse & wait
run --name char+lm-features --char-embed 25 --char-hidden 25 \
    --lm-features "$W/fwd.npz,$W/bwd.npz"
rm -rf "$W"
"$PY" - "$J" <<'PYEOF' | tee "$OUT/charfeat.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
types = sorted({t for r in rows for t in r["f1_per_type"]})
print(f"{'run':<18} {'F1':>6} {'P':>6} {'R':>6} {'steps':>6} {'train tok/s':>11} "
      + " ".join(f"{t[:8]:>8}" for t in types))
for r in rows:
    print(f"{r['name']:<18} {100*r['f1']:6.2f} {100*r['precision']:6.2f} {100*r['recall']:6.2f} "
          f"{r['steps']:6d} {r['train_tokens_per_s']:11,.0f} "
          + " ".join(f"{100*r['f1_per_type'].get(t, 0):8.2f}" for t in types))
lmr = rows[-1]
print(f"LM features: {lmr['lm_features']} per word, computed once in {lmr['lm_features_s']:.1f} s "
      "(train and dev sentences, outside the training budget)")
PYEOF
