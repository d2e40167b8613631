#!/usr/bin/env bash
# Every GPU figure mgap still owes, in one run for a session lent a CUDA machine: the
# gpu-marked tests, then issue 12's extraction targets (ViT-B/32 on 5,000 COCO-sized
# JPEGs: images/s, the ratio to CLIP_benchmark's defaults, GPU utilisation) for the
# nvJPEG path and the CPU tensor path. CI never runs it.
#
#   here, once:  echo /.gpu/ >> .git/info/exclude && bash benchmarks/gpu_check.sh --prepare
#                (mgap's wheel and the py3.12 wheels the device image lacks -> .gpu/whl,
#                 ../shared/data/tiny_coco -> .gpu/shared: ../shared does not travel)
#   there:       bash benchmarks/gpu_check.sh   (device run: carry [".gpu"], timeout_s 540)
#   a dry run on a CPU box:  DEVICE=cpu IMAGES=200 MGAP_SHARED_DIR=../shared bash benchmarks/gpu_check.sh
# Everything runs from a scratch folder: from the repository root, its mgap/ folder would
# shadow the installed package (mgap.engine lives in engine/, mapped at install).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
DEVICE=${DEVICE:-cuda}
IMAGES=${IMAGES:-5000}
LOG=${OUT:-/tmp/mgap-gpu-check}
mkdir -p "$LOG"

if [[ ${1:-} == --prepare ]]; then
    set -e
    rm -rf .gpu && mkdir -p .gpu/whl .gpu/shared/data
    cp -r ../shared/data/tiny_coco .gpu/shared/data/tiny_coco
    python3 -m pip wheel -q --no-deps --no-build-isolation . -w .gpu/whl
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .gpu/whl \
        open_clip_torch ftfy wcwidth webdataset braceexpand textual platformdirs \
        mdit-py-plugins linkify-it-py uc-micro-py plotext umap-learn pynndescent openTSNE
    du -sh .gpu
    exit 0
fi

MGAP_SHARED_DIR=$(cd "${MGAP_SHARED_DIR:-.gpu/shared}" && pwd) || exit 1
export MGAP_SHARED_DIR
if [[ -d .gpu/whl ]]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1
cd "$(mktemp -d)"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true; nproc; } | tee "$LOG/machine.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$LOG/machine.txt"

python3 -m pytest -c "$REPO/pyproject.toml" --rootdir "$REPO" -m gpu -q -p no:cacheprovider \
    "$REPO"/tests/test_{decode,backend,models_blip,models_llava}.py 2>&1 | tail -20 |
    tee "$LOG/gpu-tests.txt"

rm -rf /tmp/mgap-coco
python3 "$REPO/benchmarks/coco_copies.py" /tmp/mgap-coco --images "$IMAGES" \
    --data-root "$MGAP_SHARED_DIR/data/tiny_coco"
for decode in gpu tensor; do
    [[ $DEVICE == cuda || $decode == tensor ]] || continue
    python3 "$REPO/benchmarks/bench_extract.py" --data-root /tmp/mgap-coco --device "$DEVICE" \
        --decode "$decode" --repeats 3 2>&1 | grep -v Warning | tee "$LOG/extract-$decode.txt"
done
