#!/usr/bin/env bash
# Evaluates the shipped checkpoints on the validation side of each training source (the 8:2 split by
# seed 0 that checkpoints/train.sh holds out) and writes runs/card-eval/*.json, the figures of the
# model card (checkpoints/README.md). Usage: bash checkpoints/evaluate.sh [DEPTHS...]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/data}
mkdir -p runs/card-eval
declare -A SETS=(
  [deeppcb]="deeppcb:$SHARED/deeppcb/trainval.txt@val"
  [tunnel]="ba:$SHARED/tunnel_synthetic@val"
  [synth]="synth:3000@val"
  [synth-hard]="synth:1000:1:hard@val"
)
depths=("$@"); [ ${#depths[@]} -gt 0 ] || depths=(0 1 2 4 8)
for d in "${depths[@]}"; do
  for name in deeppcb tunnel synth synth-hard; do
    limit=(); case $name in synth*) limit=(--limit 100);; esac
    echo "lite-d$d on $name"
    python -m anodfdnet evaluate --checkpoint "lite-d$d" --data "${SETS[$name]}" "${limit[@]}" --device cpu \
      --json "runs/card-eval/lite-d$d-$name.json"
  done
done
# The model card's table, from the JSON files just written.
python - "${depths[@]}" <<'PY'
import json, sys
from pathlib import Path
sets = ["deeppcb", "tunnel", "synth", "synth-hard"]
print("| checkpoint | " + " | ".join(f"{s} F1 / IoU / AUC" for s in sets) + " |")
print("|---|" + "---|" * len(sets))
for d in sys.argv[1:]:
    cells = []
    for s in sets:
        m = json.loads(Path(f"runs/card-eval/lite-d{d}-{s}.json").read_text())
        cells.append(f"{100 * m['f1']:.1f} / {100 * m['iou']:.1f} / {100 * m['auc']:.1f} ({m['pairs']})")
    print(f"| lite-d{d} | " + " | ".join(cells) + " |")
PY
