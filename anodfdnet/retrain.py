"""The retraining loop: turn the labels collected in the app into a better checkpoint.

Loads the label dataset (``hf:DIR_OR_REPO``) with a labels policy (latest, consensus or accepted; see
``anodfdnet/data/label_policies.py``), splits it by content hash into train/val, fine-tunes from a
checkpoint, evaluates the old and the new model on the same validation pairs, writes the new checkpoint
with its provenance and a short report (which also says what each policy would keep of the labels and
why it leaves pairs out), and says how to serve it.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .checkpoint import ENV_DIR, SHIPPED_DIR, load_checkpoint, read_info, resolve
from .data import parse_spec, split
from .data.labels import labels_spec
from .device import pick_device
from .errors import UserError
from .evaluate import evaluate
from .metrics import format_header, format_row
from .train import TrainConfig, train


def retrain(labels: str, init: str, out: str, epochs: int = 20, steps_per_epoch: int | None = None,
            val_fraction: float = 0.2, size: int = 256, lr: float = 1e-4, device: str = "auto", seed: int = 0,
            name: str | None = None, progress: bool = True, labels_policy: str = "latest",
            min_agreement: float | None = None, labels_per_pair: int | None = None) -> Path:
    spec = labels_spec(labels, labels_policy, min_agreement, labels_per_pair)
    source = parse_spec(spec)
    selections = source.selections()
    policies = {p: sel.as_dict() for p, sel in selections.items()}
    for sel in selections.values():  # the policy in use is starred
        print(("* " if sel.policy == labels_policy else "  ") + sel.describe())
    if len(source) < 2:
        raise UserError(f"'{labels}' gives {len(source)} training pair(s) with the {labels_policy} labels policy; "
                        f"retraining needs at least 2 (one for validation). {source.selection.describe()}.")
    init_path = resolve(init)
    base = read_info(init_path).config
    cfg = TrainConfig(data=[spec], out=out, val_fraction=val_fraction, arch=base.arch, preset=base.preset, depth=base.depth,
                      size=size, mode="resize", loss="bce+dice", epochs=epochs, steps_per_epoch=steps_per_epoch, lr=lr, init=str(init_path),
                      device=device, seed=seed, workers=0, progress=progress,
                      extra_meta={"retrained_from": str(init), "labels": labels, "labels_spec": spec})
    best = train(cfg)

    # Old and new on the same validation pairs (the split is by content hash, so it is the one train() used).
    _, val = split(source, val_fraction, seed)
    dev = pick_device(device)
    rows = {}
    for label, ref in (("before", init_path), ("after", best)):
        model, info = load_checkpoint(ref, dev)
        rows[label] = evaluate(model, val, size, dev, progress=False)
    report = {"labels": labels, "labels_spec": spec, "labels_policy": labels_policy, "pairs": len(source),
              "val_pairs": len(val), "from": str(init), "checkpoint": str(best), "label_policies": policies, **rows}
    Path(out, "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(format_header())
    print(format_row(f"before ({init})", rows["before"]))
    print(format_row("after", rows["after"]))
    served = best
    if name:
        folder = Path(os.environ.get(ENV_DIR) or SHIPPED_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        served = folder / f"anodfdnet-{name}.safetensors"
        shutil.copyfile(best, served)
    print(f"new checkpoint: {served}\nserve it: ANODFDNET_CHECKPOINT_DIR={served.parent} python app.py "
          f"(it appears in the model choice), or python -m anodfdnet predict --checkpoint {served} ...")
    return served
