#!/usr/bin/env bash
# The accelerator check in one line on a bare CUDA machine: install the wheels carried in .whl/, then run
# benchmarks/gpu_check.py (the paper preset, at most about 8 minutes on one H100/H200) writing gpu_check.json,
# gpu_check.md, gpu_check.log, gpu_check_workers.log and nvidia-smi.txt into $OUT (or runs/gpu_check).
#
# The device tool's H200 has Python 3.12 with torch, accelerate, safetensors, pyyaml, tokenizers and
# huggingface_hub, but not datasets, symusic or pretty_midi, and no network. So, once, on a machine with pip
# access (this fills .whl/, which git ignores):
#
#     bash benchmarks/gpu_check.sh --fetch-wheels
#
# then, through the device tool: run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540).
# Extra arguments go to gpu_check.py (e.g. --cases random,adversarial --peak_tflops 989).
set -uo pipefail
cd "$(dirname "$0")/.."
# The versions the project is tested with (FACTS.md), and regex, which transformers checks at import; huggingface_hub
# and tokenizers are used as installed there (they satisfy transformers 5.24).
WHEELS=(transformers==5.24.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 symusic==0.6.0 platformdirs==4.14.9
        pySmartDL==1.3.4 pretty_midi==0.2.11.post0 mido==1.3.3 importlib_resources==7.1.0 regex==2026.11.19)
PY=${PYTHON:-python3}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  echo "usage: bash benchmarks/gpu_check.sh [--fetch-wheels | GPU_CHECK_ARGUMENTS...]"
  echo
  sed -n '2,13s/^# \{0,1\}//p' benchmarks/gpu_check.sh
  echo
  exec "$PY" benchmarks/gpu_check.py --help
fi

if [[ "${1:-}" == "--fetch-wheels" ]]; then
  exec "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
fi

if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site \
    .whl/*.whl || { echo "gpu_check.sh: installing .whl/ failed" >&2; exit 3; }
  export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
else
  echo "gpu_check.sh: no .whl/ carried; using the packages installed here" >&2
fi
OUT_DIR=${OUT:-runs/gpu_check}
mkdir -p "$OUT_DIR"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$OUT_DIR/nvidia-smi.txt"
PYTHONUNBUFFERED=1 "$PY" benchmarks/gpu_check.py --out "$OUT_DIR" "$@" 2>&1 | tee "$OUT_DIR/gpu_check.log"
