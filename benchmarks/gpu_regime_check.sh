#!/usr/bin/env bash
# One device call for issue 23 (and the CUDA-graph tests after the Trainer split): on a lent GPU
# machine whose python3 has a CUDA torch and no project install. 1) the CUDA-graph tests; 2) the
# paper's V0 at its own G widths (256,128,64) for 50k iterations as one local trial; 3) when Ray
# and Optuna are importable there, a small study end to end with 4 trials sharing the GPU.
set -o pipefail
cd "$(dirname "$0")/.." || exit 1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
out=${OUT:-/tmp/out}; mkdir -p "$out"
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
timeout 200 $py -m pytest -q -p no:cacheprovider tests/trainable/test_cuda_graphs.py 2>&1 | tee "$out/cuda_tests.txt"
start=$(date +%s)
timeout 300 $py -m study trial --preset V0 --set g_filters=256,128,64 --set iterations=50000 --set eval_every=5000 \
    --out /tmp/paper-v0 2>&1 | tr '\r' '\n' | grep -v "it/s\]$" | tail -40 | tee "$out/paper_v0.txt"
echo "paper V0 50k: $(( $(date +%s) - start )) s" | tee -a "$out/paper_v0.txt"
cp /tmp/paper-v0/result.json "$out/paper_v0_result.json" 2>/dev/null
last=$(ls /tmp/paper-v0/grids/iteration_*[0-9].png 2>/dev/null | tail -1); [ -n "$last" ] && cp "$last" "$out/paper_v0_last_grid.png"
if $py -c "import ray, optuna, plotly, pandas" 2>/dev/null; then
  cat > /tmp/gpu_study.toml <<'TOML'
[study]
samples = 4
baselines = ["V0", "recipe"]
gpus_per_trial = 0.25
[fixed]
g_filters = "256,128,64"
iterations = 3000
eval_every = 1000
TOML
  timeout 240 $py -m study study run --config /tmp/gpu_study.toml --name gpu --storage /tmp/studies 2>&1 | grep -v "^[|+]" | tail -40 | tee "$out/gpu_study.txt"
else
  echo "ray/optuna/plotly/pandas not importable here: no study" | tee "$out/gpu_study.txt"
fi
