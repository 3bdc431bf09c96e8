#!/usr/bin/env bash
# Trains the shipped checkpoints checkpoints/anodfdnet-effnet-d{0,1,2,4,8}.safetensors.
#
#   bash checkpoints/train.sh cpu    # what the shipped files got: 2 CPU cores, one thread per run (hours)
#   bash checkpoints/train.sh full   # a longer schedule for a CUDA GPU; replaces the shipped files
#
# Data mixture (see checkpoints/README.md): generated pairs (easy and hard nuisance), DeepPCB trainval
# and the tunnel-lining pairs, each split 8:2 by seed 0 into train / validation. Training uses crops at
# native resolution (DeepPCB defects are a few pixels wide; tunnel cracks are 2 px), the fast recipe
# (AdamW, warm-up, cosine decay, BCE + Dice), the anomaly prior and nuisance augmentation (the defaults of
# train); validation runs at native size and sets each checkpoint's calibrated threshold. Depth 2 starts
# from Google's ImageNet EfficientNet-Lite0 weights; the other depths start from depth 2 (every tensor of
# the same name and shape) and are fine-tuned. Run folders go to $RUNS (default runs/); a run that is
# interrupted resumes when the script is run again.
#
# The recipe comparison of the model card: ONLY_D2=1 trains the depth-2 run alone into $RUNS/effnet-d2-RECIPE-sSEED
# and copies nothing into checkpoints/, e.g.
#   RECIPE=paper SEED=1 ONLY_D2=1 RUNS=~/runs/long bash checkpoints/train.sh cpu
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-cpu}
SHARED=${SHARED:-../shared/data}
RUNS=${RUNS:-runs}
RECIPE=${RECIPE:-fast}  # fast: what the shipped files got; paper: the paper's Adam 2e-4, BCE
SEED=${SEED:-0}
DATA=(--data "deeppcb:$SHARED/deeppcb/trainval.txt" --data "ba:$SHARED/tunnel_synthetic" --data synth:2000 --data synth:1000:1:hard)
if [ "$mode" = cpu ]; then
  COMMON=(--preset effnet --size 128 --crop --batch 4 --threads 1 --workers 0 --val-limit 60 --epochs 100 --save-every 200)
  D2=(--steps-per-epoch 800 --budget-minutes 55)
  OTHERS=(--steps-per-epoch 400 --budget-minutes 10 --lr 3e-4)
elif [ "$mode" = full ]; then
  COMMON=(--preset effnet --size 256 --crop --batch 4 --workers 8 --epochs 100)
  D2=(--steps-per-epoch 2000)
  OTHERS=(--epochs 20 --steps-per-epoch 2000 --lr 3e-4)
else
  echo "usage: bash checkpoints/train.sh cpu|full" >&2; exit 2
fi
COMMON+=(--recipe "$RECIPE" --seed "$SEED")
if [ "${ONLY_D2:-0}" = 1 ]; then
  python -m anodfdnet train "${DATA[@]}" "${COMMON[@]}" "${D2[@]}" --depth 2 --out "$RUNS/effnet-d2-$RECIPE-s$SEED"
  exit 0
fi
python -m anodfdnet train "${DATA[@]}" "${COMMON[@]}" "${D2[@]}" --depth 2 --out "$RUNS/effnet-d2"
cp "$RUNS/effnet-d2/best.safetensors" checkpoints/anodfdnet-effnet-d2.safetensors
for d in 0 1 4 8; do
  python -m anodfdnet train "${DATA[@]}" "${COMMON[@]}" "${OTHERS[@]}" --depth $d \
    --init checkpoints/anodfdnet-effnet-d2.safetensors --out "$RUNS/effnet-d$d"
  cp "$RUNS/effnet-d$d/best.safetensors" checkpoints/anodfdnet-effnet-d$d.safetensors
done
