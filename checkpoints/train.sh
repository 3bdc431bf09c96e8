#!/usr/bin/env bash
# Trains the shipped checkpoints checkpoints/anodfdnet-lite-d{0,1,2,4,8}.safetensors.
#
#   bash checkpoints/train.sh full   # the full schedule, for a CUDA GPU (hours); replaces the shipped files
#   bash checkpoints/train.sh cpu    # the reduced schedule the shipped files were trained with (2 CPU cores, ~1.5 h)
#
# Data mixture (see checkpoints/README.md): generated pairs (easy and hard nuisance), DeepPCB trainval
# and the tunnel-lining pairs, each split 8:2 by seed 0 into train / validation. Training uses crops at
# native resolution (DeepPCB defects are a few pixels wide; tunnel cracks are 2 px) and validation runs
# at native size. Depth 2 is trained first; the other depths start from its weights (everything but
# the Transformer blocks depth 2 does not have) and are fine-tuned.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-full}
SHARED=${SHARED:-../shared/data}
if [ "$mode" = full ]; then
  DATA=(--data synth:20000 --data synth:5000:1:hard --data "deeppcb:$SHARED/deeppcb/trainval.txt" --data "ba:$SHARED/tunnel_synthetic")
  COMMON=(--preset lite --size 256 --crop --loss bce+dice --batch 4 --workers 8)
  python -m anodfdnet train "${DATA[@]}" "${COMMON[@]}" --epochs 100 --steps-per-epoch 2000 --depth 2 --out runs/lite-d2
  OTHERS=(--epochs 40 --steps-per-epoch 2000 --lr 1e-4)
elif [ "$mode" = cpu ]; then
  DATA=(--data synth:3000 --data synth:1000:1:hard --data "deeppcb:$SHARED/deeppcb/trainval.txt" --data "ba:$SHARED/tunnel_synthetic")
  COMMON=(--preset lite --size 128 --crop --batch 4 --workers 1 --val-limit 24)
  # What the shipped files got: 2 epochs of the paper's plain BCE (it predicted no anomaly at all yet),
  # then 25 epochs of BCE + Dice from there (the run was stopped after epoch 26; its best epoch was 25).
  python -m anodfdnet train "${DATA[@]}" "${COMMON[@]}" --epochs 2 --steps-per-epoch 300 --depth 2 --out runs/lite-d2-bce
  python -m anodfdnet train "${DATA[@]}" "${COMMON[@]}" --loss bce+dice --epochs 25 --steps-per-epoch 300 --depth 2 \
    --init runs/lite-d2-bce/last.safetensors --out runs/lite-d2
  COMMON+=(--loss bce+dice)
  OTHERS=(--epochs 4 --steps-per-epoch 300 --lr 1e-4)
else
  echo "usage: bash checkpoints/train.sh full|cpu" >&2; exit 2
fi
cp runs/lite-d2/best.safetensors checkpoints/anodfdnet-lite-d2.safetensors
for d in 0 1 4 8; do
  python -m anodfdnet train "${DATA[@]}" "${COMMON[@]}" "${OTHERS[@]}" --depth $d --init checkpoints/anodfdnet-lite-d2.safetensors \
    --out runs/lite-d$d
  cp runs/lite-d$d/best.safetensors checkpoints/anodfdnet-lite-d$d.safetensors
done
