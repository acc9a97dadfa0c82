#!/usr/bin/env bash
# Measurement job: how much unlabelled text helps the LM features of a character-word tagger.
# Two pairs of character LMs (forward, and backward with --reverse; 1-layer LSTM 128, the
# settings of job_charfeat.sh): one trained on the tagging training text alone, one on
# WikiText-2's training text plus the training text of both tagging corpora (WNUT-17 and BTC),
# their lines shuffled together (seed 0; WikiText-2's blank lines dropped). Then the tagger of
# job_charfeat.sh's last row (BiLSTM, embed 64, hidden 128, character words 25 + 25, LM
# features) for 80 s with each pair. Dev entity F1 overall and per type, training tokens/s.
#
# MODE=pair (default; about 3 minutes; DATA=wnut17 or btc): the LM budget of job_charfeat.sh,
#   LMB=60 s per LM with the two LMs of a pair at once on one core (about 30 s of a core
#   each): the tagging-text pair on core 0 and the WikiText-2 pair on core 1 at the same time,
#   then the two taggers at the same time, on core 0 and core 1.
# MODE=big (about 5 minutes): one larger LM budget, one pair: LMB=200 s per LM, the forward
#   LM on core 0 and the backward on core 1 at once; then the WNUT-17 tagger on core 0 and the
#   BTC tagger on core 1 at the same time, both with that pair. TEXT=wiki (default): the pair
#   on WikiText-2 + both tagging texts; TEXT=tagging: on both tagging texts alone (WNUT-17
#   and BTC training sentences, shuffled together), the same text without WikiText-2.
# Reads $CORPORA, writes $OUT/lmtext-$MODE[-$DATA].jsonl and .txt (the table), and -lm.txt
# (each LM's steps and validation loss as `charlm train` reports them). One thread per
# process. BUDGET_SCALE=0.05 scales every budget; PYTHON picks python3.
set -euo pipefail
. "$(dirname "$0")/tagjob.sh"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
CORP="$CORPORA"
C="$TAGGING"
MODE="${MODE:-pair}"
DATA="${DATA:-wnut17}"
case "$MODE" in
  pair) LMB0=60; NAME="lmtext-pair-$DATA" ;;
  big) LMB0=200; NAME="lmtext-big-${TEXT:-wiki}" ;;
  *) echo "MODE must be pair or big" >&2; exit 2 ;;
esac
LMB=$(scaled "${LMB:-$LMB0}")
split() {   # corpus -> its train and dev files
  case "$1" in
    wnut17) echo "$C/wnut17/wnut17train.conll $C/wnut17/emerging.dev.conll" ;;
    btc) echo "$C/btc/btc.train $C/btc/btc.dev" ;;
    *) echo "DATA must be wnut17 or btc" >&2; exit 2 ;;
  esac
}
case "$DATA" in wnut17|btc) ;; *) echo "DATA must be wnut17 or btc" >&2; exit 2 ;; esac
case "${TEXT:-wiki}" in wiki|tagging) ;; *) echo "TEXT must be wiki or tagging" >&2; exit 2 ;; esac
read -r TR DV <<< "$(split "$DATA")"
W="$(mktemp -d)"
J="$OUT/$NAME.jsonl"
: > "$J"
: > "$OUT/$NAME-lm.txt"
# the texts: a training sentence is its words joined by single spaces, one per line
"$PY" - "$CORP" "$TR" "$W" <<'PYEOF'
import random, sys
from charlm.text import conll
corp, train, w = sys.argv[1:]
text = lambda f: [" ".join(s) for s in conll.read(f).tokens]
open(f"{w}/tagtext.txt", "w", encoding="utf-8").write("\n".join(text(train)) + "\n")
wiki = [l for l in open(f"{corp}/wikitext-2/train.txt", encoding="utf-8").read().split("\n")
        if l.strip()]
both = text(f"{corp}/tagging/wnut17/wnut17train.conll") + text(f"{corp}/tagging/btc/btc.train")
mixed = wiki + both
random.Random(0).shuffle(mixed)
random.Random(0).shuffle(both)
open(f"{w}/mixed.txt", "w", encoding="utf-8").write("\n".join(mixed) + "\n")
open(f"{w}/bothtag.txt", "w", encoding="utf-8").write("\n".join(both) + "\n")
print(f"LM text: tagging text alone {sum(len(l) + 1 for l in text(train)):,} characters; "
      f"WikiText-2 + both tagging texts {sum(len(l) + 1 for l in mixed):,} characters "
      f"({len(mixed):,} lines); both tagging texts {sum(len(l) + 1 for l in both):,} "
      "characters", file=sys.stderr)
PYEOF
lm() {   # lm CORE TEXT NAME [--reverse]
  taskset -c "$1" "$PY" -m charlm train "$W/$2.txt" --layers 1 --hidden 128 --embed 32 \
    --dropout 0.1 --bptt 128 --batch 32 --valid-fraction 0.05 --eval-every 1000000 \
    --time "${LMB}s" --out "$W/$3.npz" "${@:4}" 2>"$W/$3.log" | grep -E "^(Trained|Best)" \
    | sed "s/^/$3 LM: /" | tee -a "$OUT/$NAME-lm.txt" >&2
}
tagger() {   # tagger CORE CORPUS NAME LMS
  read -r tr dv <<< "$(split "$2")"
  taskset -c "$1" "$PY" "$here/bench/tag_run.py" --train "$tr" --dev "$dv" --bidirectional \
    --budget "$B" --eval-every "$EVERY" --char-embed 25 --char-hidden 25 \
    --lm-features "$4" --name "$3" > "$W/$3.json"
}
if [ "$MODE" = pair ]; then
  lm 0 tagtext tag-fwd & lm 0 tagtext tag-bwd --reverse &
  lm 1 mixed wiki-fwd & lm 1 mixed wiki-bwd --reverse &
  wait
  tagger 0 "$DATA" "$DATA-lm-tagtext" "$W/tag-fwd.npz,$W/tag-bwd.npz" &
  tagger 1 "$DATA" "$DATA-lm-wiki+tagtext" "$W/wiki-fwd.npz,$W/wiki-bwd.npz" &
  wait
  cat "$W/$DATA-lm-tagtext.json" "$W/$DATA-lm-wiki+tagtext.json" | tee -a "$J"
else
  case "${TEXT:-wiki}" in
    wiki) T=mixed; L="wiki+tagtext" ;;
    tagging) T=bothtag; L="bothtagtext" ;;
  esac
  lm 0 $T big-fwd & lm 1 $T big-bwd --reverse & wait
  tagger 0 wnut17 "wnut17-lm-$L-${LMB}s" "$W/big-fwd.npz,$W/big-bwd.npz" &
  tagger 1 btc "btc-lm-$L-${LMB}s" "$W/big-fwd.npz,$W/big-bwd.npz" &
  wait
  cat "$W/wnut17-lm-$L-${LMB}s.json" "$W/btc-lm-$L-${LMB}s.json" | tee -a "$J"
fi
rm -rf "$W"
"$PY" - "$J" <<'PYEOF' | tee "$OUT/$NAME.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    types = " ".join(f"{t} {100*v:.2f}" for t, v in sorted(r["f1_per_type"].items()))
    print(f"{r['name']:<28} F1 {100*r['f1']:6.2f}  P {100*r['precision']:6.2f}  "
          f"R {100*r['recall']:6.2f}  steps {r['steps']:5d} (best {r['best_step']})  "
          f"train {r['train_tokens_per_s']:,.0f} tok/s  features {r['lm_features_s']:.1f} s"
          f"  | {types}")
PYEOF
