#!/usr/bin/env bash
# The long runs on a lent GPU machine (the device tool: 15 minutes, one call of at most 10), in one
# prepared call. docs/gpu.md says why each step is there; in short:
#
#   here:   scripts/gpu.sh pack ../shared/data/fer2013   # .device/: the data and the missing wheels
#           scripts/gpu.sh lean                          # branch gpu-lean: the tree without checkpoints
#   device: run(command="bash scripts/gpu.sh run", carry=[".device"], timeout_s=600)
#   here:   scripts/gpu.sh unlean                        # back to main, checkpoints restored
#           scripts/gpu.sh collect FILES_AT              # finished runs into results/
#
# `run` trains, at the committed recipe, the bionic_wide seeds not yet in results/headline and then
# the matrix runs not yet in results/ablations (seed-major), MAX_RUNS at once on the one GPU, and
# stops the lowest-priority ones (scripts/gpu_watch.py) when not all would finish by the deadline.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
DEVICE_DIR=.device
MAX_RUNS=${MAX_RUNS:-14}        # runs at once: one CPU core each, two cores left for the rest
DEADLINE_S=${DEADLINE_S:-550}   # from the start of `run`; the device call allows 600
WIDE_SEEDS=${WIDE_SEEDS:-0 1 2}
EXTRA=${EXTRA:-}                # more LightningCLI arguments for every fit and test (smoke tests)
WORK=${WORK:-/tmp/bionic-gpu}

die() { echo "gpu.sh: $*" >&2; exit 2; }

pack() {  # DATA: put the data and the wheels the device's image lacks into .device/
    local data=${1:?usage: scripts/gpu.sh pack FER2013_ROOT}
    [ -d "$data/train" ] && [ -d "$data/test" ] || die "$data has no train/ and test/ folders; give the FER-2013 image-folder root"
    mkdir -p "$DEVICE_DIR/fer2013" "$DEVICE_DIR/wheels"
    cp -a "$data/train" "$data/test" "$DEVICE_DIR/fer2013/"
    # The device's python 3.12 has torch, lightning, torchmetrics, numpy, pandas and matplotlib;
    # not jsonargparse (LightningCLI's parser) nor its signature extras. wandb is not needed:
    # `run` trains with --wandb.mode disabled, which never imports it.
    local pins
    pins=$(.venv/bin/python -m pip list --format=freeze 2>/dev/null | grep -iE '^(jsonargparse|docstring[-_]parser|typeshed[-_]client)==') \
        || die "no .venv with jsonargparse here; run make install first"
    # shellcheck disable=SC2086
    .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$DEVICE_DIR/wheels" $pins \
        || die "pip download failed for: $pins"
    du -sh "$DEVICE_DIR"
}

tree_bytes() {  # what the device call sends: tracked files that exist, untracked unignored ones, .device
    { git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null; \
      find "$DEVICE_DIR" -type f -exec stat -c %s {} + 2>/dev/null; } | awk '{s += $1} END {print s + 0}'
}

lean() {  # the device call sends tracked files too: the headline checkpoints (42 MB) would not fit
    git diff --quiet && git diff --cached --quiet || die "commit or stash your changes first"
    git switch -q -C gpu-lean
    git rm -q --ignore-unmatch 'results/headline/runs/*/seed_*/best.ckpt'
    git commit -q -m "gpu-lean: the tree a device call sends, without the headline checkpoints" || true
    local bytes; bytes=$(tree_bytes)
    echo "on branch gpu-lean; the device call would send $((bytes / 1048576)) MiB (limit 64)"
    [ "$bytes" -lt $((64 * 1048576)) ] || die "still over 64 MiB; carry less"
}

unlean() {
    git switch -q main && git branch -q -D gpu-lean && echo "back on main, checkpoints restored"
}

plan() {  # lines "VARIANT SEED RUNS_ROOT", highest priority first
    local s
    for s in $WIDE_SEEDS; do
        [ -f "results/headline/runs/bionic_wide/seed_$s/metrics.json" ] || echo "bionic_wide $s $WORK/headline"
    done
    # The committed matrix folders mark what is done; the dry run lists the rest in matrix order.
    "$PYTHON" -m bionic ablations --dry-run --runs results/ablations/runs \
        | sed -nE "s#^\[[0-9]+/[0-9]+\] ([a-z_]+) seed ([0-9]+): (new|interrupted|fitted)\$#\1 \2 $WORK/ablations#p"
}

run() {  # on the device machine
    local start out=${OUT:?run this through the device tool: \$OUT is where results come back}
    start=$(date +%s)
    export PYTHONUNBUFFERED=1 WANDB_MODE=disabled OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
    export BIONIC_CACHE=$WORK/cache
    mkdir -p "$WORK/logs"
    if ls "$DEVICE_DIR"/wheels/*.whl >/dev/null 2>&1; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$WORK/site" "$DEVICE_DIR"/wheels/*.whl || die "installing .device/wheels failed"
        export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    {
        date -u; nvidia-smi -L 2>&1
        "$PYTHON" -c 'import torch, lightning, torchmetrics, jsonargparse
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available() and torch.cuda.get_device_name())
print("lightning", lightning.__version__, "torchmetrics", torchmetrics.__version__, "jsonargparse", jsonargparse.__version__)'
    } > "$out/device.txt" 2>&1 || { cat "$out/device.txt"; die "the device's python cannot import the training stack"; }
    cat "$out/device.txt"
    start_mps >> "$out/device.txt" 2>&1
    # Decode FER-2013 once into the cache, so the runs do not each decode 35,887 JPEGs at once.
    "$PYTHON" -c "from bionic.data.fer2013 import read_fer2013; read_fer2013('$DEVICE_DIR/fer2013', progress=False)" \
        || die "reading $DEVICE_DIR/fer2013 failed; run scripts/gpu.sh pack here first"
    plan | head -n "$MAX_RUNS" > "$WORK/plan.txt"
    echo "$(wc -l < "$WORK/plan.txt") runs at once:"; cat "$WORK/plan.txt"
    : > "$WORK/pids.txt"
    local variant seed root
    while read -r variant seed root; do
        # shellcheck disable=SC2086
        setsid "$PYTHON" -m bionic ablations --variants "$variant" --seeds "$seed" --runs "$root" --jobs 1 -- \
            --data.root "$DEVICE_DIR/fer2013" --wandb.mode disabled --trainer.enable_progress_bar false $EXTRA \
            > "$WORK/logs/${variant}_seed_$seed.log" 2>&1 < /dev/null &
        echo "$! $root/$variant/seed_$seed" >> "$WORK/pids.txt"
    done < "$WORK/plan.txt"
    if ! "$PYTHON" scripts/gpu_watch.py "$WORK/pids.txt" $((start + DEADLINE_S)) 2>&1 | tee "$out/watch.log"; then
        # Without the watcher nothing would stop the runs before the call's limit, and then
        # nothing would come back: hold the deadline here instead.
        echo "gpu_watch failed; stopping every run at the deadline" | tee -a "$out/watch.log"
        sleep $(( start + DEADLINE_S - $(date +%s) > 0 ? start + DEADLINE_S - $(date +%s) : 0 ))
    fi
    local pid
    while read -r pid _; do kill -TERM -- "-$pid" 2>/dev/null; done < "$WORK/pids.txt"
    wait
    bring_back "$out"
    echo "done in $(( $(date +%s) - start )) s; finished: $(find "$WORK"/headline "$WORK"/ablations -name metrics.json 2>/dev/null | wc -l)"
}

start_mps() {  # MPS lets the runs' small kernels share the GPU at once instead of taking turns
    command -v nvidia-cuda-mps-control >/dev/null || { echo "mps: no nvidia-cuda-mps-control"; return; }
    export CUDA_MPS_PIPE_DIRECTORY=$WORK/mps CUDA_MPS_LOG_DIRECTORY=$WORK/mps
    mkdir -p "$WORK/mps"
    if nvidia-cuda-mps-control -d && timeout 60 "$PYTHON" -c 'import torch; torch.ones(1, device="cuda").sum().item()'; then
        echo "mps: on"
    else
        echo quit | nvidia-cuda-mps-control 2>/dev/null
        unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
        echo "mps: failed, runs take turns on the GPU"
    fi
}

bring_back() {  # OUT: at most 8 files of 16 MiB come back, two folders down
    local out=$1 dir s
    tar -czf "$out/logs.tar.gz" -C "$WORK" logs $(cd "$WORK" && find headline ablations -name history.json -o -name run.log 2>/dev/null)
    (cd "$WORK/ablations" 2>/dev/null && find . -name metrics.json | sed 's|/metrics.json$||' \
        | xargs -r -I{} find {} -maxdepth 1 \( -name metrics.json -o -name history.json -o -name config.yaml \) \
        | tar -czf "$out/matrix.tar.gz" -T -)
    for s in $WIDE_SEEDS; do  # one file each: a weights-only checkpoint is about 8 MB
        dir=$WORK/headline/bionic_wide/seed_$s
        [ -f "$dir/metrics.json" ] || continue
        "$PYTHON" -c "import sys, torch; c = torch.load(sys.argv[1], map_location='cpu', weights_only=False)
for k in ('optimizer_states', 'lr_schedulers'): c.pop(k, None)
torch.save(c, sys.argv[2])" "$dir/checkpoints/best.ckpt" "$dir/best.ckpt"
        tar -cf "$out/wide_seed_$s.tar" -C "$WORK/headline" $(cd "$WORK/headline" && ls -d bionic_wide/seed_$s/{metrics.json,history.json,config.yaml,best.ckpt,confusion_matrix.png} 2>/dev/null)
    done
    ls -la "$out"
}

collect() {  # FILES_AT: the folder the device tool put the returned files in
    local at=${1:?usage: scripts/gpu.sh collect FILES_AT} t
    mkdir -p runs/gpu
    [ -f "$at/matrix.tar.gz" ] && tar -xzf "$at/matrix.tar.gz" -C runs/gpu --one-top-level=ablations
    for t in "$at"/wide_seed_*.tar; do [ -f "$t" ] && tar -xf "$t" -C runs/gpu --one-top-level=headline; done
    [ -f "$at/logs.tar.gz" ] && tar -xzf "$at/logs.tar.gz" -C runs/gpu --one-top-level=logs
    local run dest
    for run in runs/gpu/ablations/*/seed_* runs/gpu/headline/*/seed_*; do
        [ -f "$run/metrics.json" ] || continue
        case $run in  # runs/gpu/<matrix>/<variant>/seed_<s> -> results/<matrix>/runs/<variant>/seed_<s>
            runs/gpu/ablations/*) dest=results/ablations/runs/${run#runs/gpu/ablations/} ;;
            runs/gpu/headline/*) dest=results/headline/runs/${run#runs/gpu/headline/} ;;
        esac
        if [ -e "$dest/metrics.json" ]; then echo "kept $dest (already there)"; continue; fi
        mkdir -p "$dest" && cp -a "$run"/. "$dest"/ && echo "collected $dest"
    done
    echo "next: python -m bionic report results/ablations/runs --out results/ablations --matrix"
}

case "${1:-}" in
    pack|lean|unlean|run|collect|plan) cmd=$1; shift; "$cmd" "$@" ;;
    *) die "usage: scripts/gpu.sh pack DATA | lean | run | unlean | collect FILES_AT | plan" ;;
esac
