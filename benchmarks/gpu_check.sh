#!/usr/bin/env bash
# The first of the two GPU calls (the second: benchmarks/gpu_study.sh), on a lent GPU machine (the
# device tool), where python3 holds a CUDA build of torch and the project is not installed
# (trainable/ needs only torch, numpy, pillow, tqdm). In order: that steps replayed as CUDA graphs
# compute what eager ones do, fused trials' graphed step included (tests/trainable/test_cuda_graphs.py);
# the trainer's it/s against the plain reference loop, V0's FLOPs per iteration and the fraction of
# the GPU's bf16 peak it reaches, and its host syncs per iteration (train_speed.py); the aggregate
# it/s of K fused trials against one trial alone (fused_throughput.py); and 1 against 4 trials
# sharing the GPU as separate processes (gpu_sharing.py). About 6 minutes; each step's output is
# also written to $OUT (or here). A bare machine first draws the built-in data set (about 2 s) and
# trains the judge once (1500 steps).
#
#     bash benchmarks/gpu_check.sh
set -o pipefail
cd "$(dirname "$0")/.." || exit 1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
out=${OUT:-.}
python=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())" 2>&1 |
    tee -a "$out/gpu.txt"
# First that graphed steps compute what eager ones do (pytest is on that machine's image).
timeout 240 "$python" -m pytest -q -p no:cacheprovider tests/trainable/test_cuda_graphs.py 2>&1 | tee "$out/cuda_tests.txt"
timeout 150 "$python" benchmarks/train_speed.py --device cuda 2>&1 | tee "$out/train_speed.txt"
timeout 150 "$python" benchmarks/fused_throughput.py --device cuda --trials 1,2,4,8,16,32 --seconds 3 2>&1 |
    tee "$out/fused_throughput.txt"
timeout 120 "$python" benchmarks/gpu_sharing.py --trials 1,4 --seconds 10 2>&1 | tee "$out/gpu_sharing.txt"
