#!/usr/bin/env bash
# Every GPU check in one run, on a machine with an NVIDIA GPU where the onnxruntime-gpu wheel was
# uploaded in parts (see docs/gpu.md): reassemble and install it, run the GPU tests, verify the
# reference bundles on the CUDA EP, run the deployment-scale zoo on CUDA. Prints a short table last.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/bridge-gpu}
mkdir -p "$OUT" /tmp/ortw
name=$(cat .device/wheel-name)
if [ ! -d /tmp/site/onnxruntime ]; then
  cat /tmp/ortw/ortpart00 /tmp/ortw/ortpart01 /tmp/ortw/ortpart02 /tmp/ortw/ortpart03 .device/ortpart04 > "/tmp/ortw/$name"
  (cd /tmp/ortw && cp "$OLDPWD/.device/wheel.sha256" . && sha256sum -c wheel.sha256) || exit 10
  python3 -m pip install -q --no-deps --target /tmp/site "/tmp/ortw/$name" || exit 11
fi
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import onnxruntime as o, torch; o.preload_dlls(); print('ort', o.__version__, o.get_available_providers(), 'torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
timeout 240 python3 -m pytest tests/test_gpu.py -q -p no:cacheprovider 2>&1 | tail -15 | tee "$OUT/pytest.txt"
for b in build/reference/bundles/*/; do
  [ -d "$b" ] || continue
  timeout 60 python3 -m bridge verify "$b" --device cuda --json "$OUT/ref_$(basename "$b").json" > "$OUT/ref_$(basename "$b").txt" 2>&1
  echo "reference bundle $(basename "$b") on CUDA EP: exit $?" | tee -a "$OUT/summary.txt"
done
# the deployment-scale zoo on CUDA (zoo/scale_gpu.toml through bridge check: strict fp32, TF32, fused, fp16,
# IO binding); ZOO_MODELS: comma-separated names or globs (e.g. 'scale_gpu.bert_base,scale_gpu.resnet50')
timeout ${ZOO_BUDGET:-330} python3 tools/zoo_scale.py --config zoo/scale_gpu.toml --summary "$OUT/zoo/summary.json" \
  --out "$OUT/zoo/scale_gpu.md" --timeout $(( ${ZOO_BUDGET:-330} - 20 )) --threads "$(nproc)" ${ZOO_MODELS:+--models $ZOO_MODELS}
cat "$OUT/zoo/scale_gpu.md" 2>/dev/null | sed -n '/## Speed/,/## Every/p'
echo "== summary"; cat "$OUT/summary.txt"; tail -3 "$OUT/pytest.txt"
