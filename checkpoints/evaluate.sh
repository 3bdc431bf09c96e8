#!/usr/bin/env bash
# Evaluates the shipped checkpoints on the validation side of each training source (the 8:2 split by
# seed 0 that checkpoints/train.sh holds out) and writes runs/card-eval/*.json, the figures of the
# model card (checkpoints/README.md): F1 at 0.5 (the paper's convention) and at each checkpoint's
# calibrated threshold, IoU at that threshold, AUC. Usage: bash checkpoints/evaluate.sh [DEPTHS...]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/data}
mkdir -p runs/card-eval
declare -A SETS=(
  [deeppcb]="deeppcb:$SHARED/deeppcb/trainval.txt@val"
  [tunnel]="ba:$SHARED/tunnel_synthetic@val"
  [synth]="synth:2000@val"
  [synth-hard]="synth:1000:1:hard@val"
)
depths=("$@"); [ ${#depths[@]} -gt 0 ] || depths=(0 1 2 4 8)
for d in "${depths[@]}"; do
  for name in deeppcb tunnel synth synth-hard; do
    limit=(); case $name in synth*) limit=(--limit 100);; esac
    echo "effnet-d$d on $name"
    python -m anodfdnet evaluate --checkpoint "effnet-d$d" --data "${SETS[$name]}" "${limit[@]}" --device cpu \
      --json "runs/card-eval/effnet-d$d-$name.json"
  done
done
# The model card's table, from the JSON files just written.
python - "${depths[@]}" <<'PY'
import json, sys
from pathlib import Path
sets = ["deeppcb", "tunnel", "synth", "synth-hard"]
print("| checkpoint | threshold | " + " | ".join(f"{s}: F1 @0.5 / F1 / IoU / AUC (pairs)" for s in sets) + " |")
print("|---|---:|" + "---|" * len(sets))
for d in sys.argv[1:]:
    cells, t = [], None
    for s in sets:
        m = json.loads(Path(f"runs/card-eval/effnet-d{d}-{s}.json").read_text())
        c, t = m["calibrated"], m["calibrated"]["threshold"]
        cells.append(f"{100 * m['f1']:.1f} / {100 * c['f1']:.1f} / {100 * c['iou']:.1f} / {100 * m['auc']:.1f} ({m['pairs']})")
    print(f"| effnet-d{d} | {t:.2f} | " + " | ".join(cells) + " |")
PY
