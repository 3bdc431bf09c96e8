#!/usr/bin/env bash
# Prepared GPU check of batch inspection (issue 24; benchmarks/INSPECT.md): one GPU, ~16 cores, a few minutes.
#
#   bash benchmarks/inspect_gpu.sh [PAIRS]        # from the repository root; PAIRS default 1000
#
# 1. generates PAIRS 512x512 JPEG pairs (benchmarks/inspect_bench.make_pairs; numpy, OpenCV and Pillow only);
# 2. times the model alone (Predictor.predict_logits, the auto path: bf16 on CUDA) at batch 16;
# 3. runs `python -m anodfdnet inspect --engine local --device cuda --batch 16 --workers 14` end to end with
#    alignment auto, then with --align off (masks, heat maps and thumbnails written either way);
# 4. the same with --engine ray (one GPU actor, --gpus-per-worker 1) only where Ray is installed;
# 5. `python -m benchmarks gil`: the CPU steps in as many threads as processes on every core (up to 16), the local
#    engine's GIL ceiling that 2-core machines cannot show (and perf's split by library where perf is installed).
# Target: >= 500 pairs/s end to end. Needs no gradio, datasets or Ray; needs pyarrow >= 20 (the run's journal).
# Writes $OUT/inspect_gpu.json (or runs/inspect_gpu.json when $OUT is unset) and prints one line per measurement.
set -euo pipefail
PAIRS=${1:-1000}
DEST=${OUT:-runs}
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nproc; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$PY" -c "import pyarrow, pyarrow.json as j; print('pyarrow', pyarrow.__version__); assert hasattr(j, 'open_json'), 'pyarrow >= 20 is needed'"
"$PY" - "$PAIRS" "$DEST" <<'EOF'
import json, os, sys, time
from pathlib import Path
from types import SimpleNamespace
sys.path.insert(0, os.getcwd())
from benchmarks.inspect_bench import make_pairs, model_only, run_engine, stage_costs

pairs, dest = int(sys.argv[1]), Path(sys.argv[2])
t0 = time.perf_counter()
folder = make_pairs(pairs, 512)
print(f"{pairs} pairs made in {time.perf_counter() - t0:.0f} s", flush=True)
out = {"pairs": pairs, "cores": os.cpu_count(), "load_start": os.getloadavg()}
out["model_only_b16"] = m = model_only("effnet-d2", folder, 16, calls=50, device="cuda")
print(f"model only, batch 16: {m['pairs_per_s']:.0f} pairs/s ({m['path']})", flush=True)
out["stages"] = st = stage_costs("effnet-d2", folder)
print(f"CPU per pair: {st['cpu_s_per_pair'] * 1000:.1f} ms (decode {st['decode'] * 1000:.1f}, align {st['align'] * 1000:.1f}, "
      f"resize {st['resize'] * 1000:.1f}, finish {st['finish'] * 1000:.1f}) -> {os.cpu_count() / st['cpu_s_per_pair']:.0f} pairs/s "
      "on all cores", flush=True)
runs = []
engines = ["local"]
try:
    import ray  # noqa: F401
    engines.append("ray")
except ImportError:
    print("Ray is not installed here: the Ray engine is not measured", flush=True)
for engine in engines:
    for align in ("auto", "off"):
        a = SimpleNamespace(checkpoint="effnet-d2", device="cuda", batch=16, workers=14, cpus=os.cpu_count(), cpus_per_worker=1, align=align)
        if engine == "ray":
            a.workers = 1
        try:
            r = run_engine(engine, folder, pairs, a, dest / f"inspect-gpu-{engine}-{align}")
        except Exception as e:  # one failed run must not lose the others' figures
            r = {"engine": engine, "error": str(e)[-1500:]}
        r["align"] = align
        runs.append(r)
        print(json.dumps(r), flush=True)
out["runs"] = runs
out["load_end"] = os.getloadavg()
(dest / "inspect_gpu.json").write_text(json.dumps(out, indent=1))
print(f"wrote {dest / 'inspect_gpu.json'}")
EOF
"$PY" -m benchmarks gil --seconds 10 --out "$DEST/GIL.md" || echo "the GIL check failed (above); the figures above stand"
