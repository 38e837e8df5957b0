#!/usr/bin/env bash
# GPU check for the ROS-free core (run on the GPU machine, from the repository root; no
# installs, no network). The GPU machine has torch + CUDA but no ROS, OpenVINO or TensorRT
# (shared/FACTS.md), so this exercises what it has:
#   1. the CUDA tests (test/unit/test_runtime_cuda.py; TensorRT tests skip without tensorrt),
#   2. a GPU benchmark of the camera and lidar cores (fp32/fp16/bf16, eager, channels-last,
#      torch.compile) against fp32 eager in the same run, and of the whole per-frame core
#      pipeline (pre/post-processing, both detectors, fusion).
# Results go to $OUT (default: a fresh temporary directory): env.txt, cuda_tests.txt,
# cuda_tests.xml, gpu_bench.json, gpu_bench.log, summary.txt. Exit status: the tests' status.
#
#   OUT=/tmp/gpu scripts/gpu_check.sh            # shipped baselines if present, else random
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
  "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__,
"cuda", torch.version.cuda, "available", torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
  for module in onnxruntime openvino tensorrt nncf rclpy; do
    "$PY" -c "import $module; print('$module', getattr($module, '__version__', 'present'))" \
      2>/dev/null || echo "$module missing"
  done
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

"$PY" -m pytest -q -rs -p no:cacheprovider -o addopts="" \
  test/unit/test_runtime_cuda.py test/unit/test_runtime_tensorrt.py \
  --junitxml="$OUT/cuda_tests.xml" >"$OUT/cuda_tests.txt" 2>&1
tests=$?
tail -n 15 "$OUT/cuda_tests.txt"

weights=()
for kind in camera lidar; do
  file=ad_perception/models/weights/${kind}_baseline.pt
  [ -f "$file" ] && weights+=("--$kind" "$file")
done
timeout 420 "$PY" -m ad_perception.compress.gpu_bench --out "$OUT/gpu_bench.json" \
  "${weights[@]}" >"$OUT/gpu_bench.log" 2>&1
bench=$?
tail -n 8 "$OUT/gpu_bench.log"

{
  echo "cuda tests exit status: $tests"
  echo "gpu benchmark exit status: $bench"
  grep -E "passed|failed|skipped" "$OUT/cuda_tests.txt" | tail -n 1
} | tee "$OUT/summary.txt"
exit "$tests"
