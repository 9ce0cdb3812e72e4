#!/usr/bin/env bash
# The long runs on a lent GPU machine (the device tool: 15 minutes, one call of at most 10), in one
# prepared call. docs/gpu.md says why each step is there; in short:
#
#   here:   scripts/gpu.sh pack ../shared/data/fer2013   # .device/: the data and the missing wheels
#           scripts/gpu.sh lean                          # branch gpu-lean: the tree without checkpoints
#   device: run(command="KEEP=1 CALL_S=190 TOTAL_S=700 PLAN_FILE=scripts/gpu_plan.txt bash scripts/gpu.sh run",
#               carry=[".device"], timeout_s=240)
#   device: run(command="DEADLINE_S=N bash scripts/gpu.sh finish", timeout_s=N+45)   # at once, while warm
#   here:   scripts/gpu.sh unlean                        # back to main, checkpoints restored
#           scripts/gpu.sh collect FILES_AT              # for each call's files: finished runs into results/
#
# `run` starts every run of the plan (PLAN_FILE, or by default the bionic_wide seeds not yet in
# results/headline, then the matrix runs not yet in results/ablations, seed-major), MAX_RUNS at
# once on the one GPU, each in a session of its own so that it outlives the call. It watches them
# for CALL_S seconds, stopping the lowest-priority ones (scripts/gpu_watch.py) when not all would
# finish by TOTAL_S, and brings back what finished. `finish`, the next call on the same warm
# machine, watches them to its own deadline, stops the rest and brings back the remainder.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}          # the device's python
LOCAL_PYTHON=${LOCAL_PYTHON:-.venv/bin/python}  # this machine's, for `collect`
DEVICE_DIR=.device
MAX_RUNS=${MAX_RUNS:-14}        # runs at once: one CPU core each, two cores left for the rest
CALL_S=${CALL_S:-560}           # `run` returns after this many seconds (the device call allows 600)
TOTAL_S=${TOTAL_S:-$CALL_S}     # from the start of `run` to the end of `finish`: what the watcher plans for
KEEP=${KEEP:-0}                 # 1: `run` leaves its runs going for a `finish` call; 0: it stops them
DEADLINE_S=${DEADLINE_S:-120}   # `finish`: seconds it may watch before it stops every run
PLAN_FILE=${PLAN_FILE:-}        # lines `ROOT VARIANT SEED [LightningCLI args]`, highest priority first
PROFILE=${PROFILE:-1}           # 1: `run` also profiles a training step of each network on a spare core
BENCH_ARGS=${BENCH_ARGS:---steps 30 --warmup 10}
WIDE_SEEDS=${WIDE_SEEDS:-0 1 2}
EXTRA=${EXTRA:-}                # more LightningCLI arguments for every fit and test (smoke tests)
WORK=${WORK:-/tmp/bionic-gpu}

die() { echo "gpu.sh: $*" >&2; exit 2; }
# ROOT/VARIANT/seed_S -> ckpt_ROOT_VARIANT_seed_S.ckpt: one flat file a run (bring_back names it, collect reads it)
ckpt_name() { echo "ckpt_$(echo "$1" | tr '/' '_').ckpt"; }

pack() {  # DATA: put the data and the wheels the device's image lacks into .device/
    local data=${1:?usage: scripts/gpu.sh pack FER2013_ROOT}
    [ -d "$data/train" ] && [ -d "$data/test" ] || die "$data has no train/ and test/ folders; give the FER-2013 image-folder root"
    mkdir -p "$DEVICE_DIR/wheels"
    # One archive, not 32,298 files: the device call counts each file's archive header and padding
    # too, which would take the folders from 48 to about 75 MiB. `run` unpacks it.
    tar -czf "$DEVICE_DIR/fer2013.tar.gz" -C "$data" train test
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

lean() {  # the device call sends tracked files too: the committed checkpoints (over 300 MB) would not fit
    git diff --quiet && git diff --cached --quiet || die "commit or stash your changes first"
    git switch -q -C gpu-lean
    git ls-files -z 'results/*.ckpt' | xargs -0 -r git rm -q
    git commit -q -m "gpu-lean: the tree a device call sends, without the committed checkpoints" || true
    local bytes; bytes=$(tree_bytes)
    echo "on branch gpu-lean; the device call would send $((bytes / 1048576)) MiB (limit 64)"
    [ "$bytes" -lt $((64 * 1048576)) ] || die "still over 64 MiB; carry less"
}

unlean() {
    git switch -q main && git branch -q -D gpu-lean && echo "back on main, checkpoints restored"
}

plan() {  # lines "VARIANT SEED RUN_ROOT [ARGS]", highest priority first, skipping committed runs
    local root variant seed args s
    if [ -n "$PLAN_FILE" ]; then
        [ -f "$PLAN_FILE" ] || die "PLAN_FILE $PLAN_FILE does not exist"
        # ROOT names the results folder: a finished run lands in results/ROOT/runs/VARIANT/seed_SEED.
        while read -r root variant seed args; do
            case $root in ''|'#'*) continue ;; esac
            [ -f "results/$root/runs/$variant/seed_$seed/metrics.json" ] || echo "$variant $seed $WORK/$root $args"
        done < "$PLAN_FILE"
        return
    fi
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
        date -u; nvidia-smi -L 2>&1; lscpu 2>/dev/null | grep -m1 'Model name'
        "$PYTHON" -c 'import torch, lightning, torchmetrics, jsonargparse
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available() and torch.cuda.get_device_name())
print("lightning", lightning.__version__, "torchmetrics", torchmetrics.__version__, "jsonargparse", jsonargparse.__version__)'
    } > "$WORK/logs/device.txt" 2>&1 || { cat "$WORK/logs/device.txt"; die "the device's python cannot import the training stack"; }
    cat "$WORK/logs/device.txt"
    start_mps >> "$WORK/logs/device.txt" 2>&1
    tail -1 "$WORK/logs/device.txt"
    # Decode FER-2013 once into the cache, so the runs do not each decode 35,887 JPEGs at once.
    mkdir -p "$WORK/fer2013" && tar -xzf "$DEVICE_DIR/fer2013.tar.gz" -C "$WORK/fer2013" \
        || die "unpacking $DEVICE_DIR/fer2013.tar.gz failed; run scripts/gpu.sh pack here first"
    "$PYTHON" -c "from bionic.data.fer2013 import read_fer2013; read_fer2013('$WORK/fer2013', progress=False)" \
        || die "reading $WORK/fer2013 failed"
    plan | head -n "$MAX_RUNS" > "$WORK/plan.txt"
    echo "$(wc -l < "$WORK/plan.txt") runs at once:"; cat "$WORK/plan.txt"
    : > "$WORK/pids.txt"
    local variant seed root args
    set -f  # a plan's arguments hold brackets ([1,2]) that must not match file names
    while read -r variant seed root args; do
        # shellcheck disable=SC2086
        setsid "$PYTHON" -m bionic ablations --variants "$variant" --seeds "$seed" --runs "$root" --jobs 1 -- \
            --data.root "$WORK/fer2013" --wandb.mode disabled --trainer.enable_progress_bar false $args $EXTRA \
            > "$WORK/logs/${root##*/}_${variant}_seed_$seed.log" 2>&1 < /dev/null &
        echo "$! $root/$variant/seed_$seed" >> "$WORK/pids.txt"
    done < "$WORK/plan.txt"
    set +f
    if [ "$PROFILE" = 1 ]; then
        # On a spare core, beside the runs: where a step's host time goes on this machine (the
        # last lease found a step held up by the host; docs/gpu.md). Brought back with the runs.
        mkdir -p "$WORK/bench"
        # shellcheck disable=SC2086
        setsid timeout 300 "$PYTHON" -m bionic bench --data.root "$WORK/fer2013" $BENCH_ARGS \
            --repeats 1 --threads 1 --profile --out "$WORK/bench/bench.json" > "$WORK/logs/bench.log" 2>&1 < /dev/null &
    fi
    watch_until $((start + CALL_S)) $((start + TOTAL_S))
    [ "$KEEP" = 1 ] || stop_all
    bring_back "$out"
    echo "run: $(( $(date +%s) - start )) s; finished: $(finished | wc -l); still going: $(running | wc -l)"
}

finish() {  # on the same warm machine, in the call after `run` (KEEP=1)
    local start out=${OUT:?run this through the device tool: \$OUT is where results come back} pid dir
    start=$(date +%s)
    [ -s "$WORK/pids.txt" ] || die "no runs here ($WORK/pids.txt): this is a fresh machine, the runs of \`run\` are gone"
    for dir in ${STOP:-}; do  # run folders (ROOT/VARIANT/seed_S) to give up on now, freeing the GPU for the rest
        grep " $WORK/$dir\$" "$WORK/pids.txt" | while read -r pid _; do
            echo "stopping $dir (STOP)"; kill -TERM -- "-$pid" 2>/dev/null
        done
    done
    watch_until $((start + DEADLINE_S)) $((start + DEADLINE_S))
    stop_all
    bring_back "$out"
    echo "finish: $(( $(date +%s) - start )) s; finished: $(finished | wc -l)"
}

watch_until() {  # RETURN_AT PLAN_FOR (epoch seconds): watch the runs, planning for the second, until the first
    local seconds=$(( $1 - $(date +%s) ))
    [ "$seconds" -gt 0 ] || return 0
    # The watcher plans for the whole lease but returns with this call; the runs live on.
    timeout "$seconds" "$PYTHON" scripts/gpu_watch.py "$WORK/pids.txt" "$2" 2>&1 | tee -a "$WORK/logs/watch.log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] \
        || { echo "gpu_watch failed; the runs go on until the call's end" | tee -a "$WORK/logs/watch.log"
             sleep $(( $1 - $(date +%s) > 0 ? $1 - $(date +%s) : 0 )); }
}

stop_all() {  # every run still going, and wait (up to 30 s) until they are gone
    local pid i
    while read -r pid _; do kill -TERM -- "-$pid" 2>/dev/null; done < "$WORK/pids.txt"
    for i in $(seq 30); do [ -z "$(running)" ] && break; sleep 1; done
}

running() {  # a run's leader is alive and not a zombie that `run`'s shell has not reaped yet
    local pid dir
    while read -r pid dir; do
        [ -r "/proc/$pid/stat" ] && [ "$(cut -d')' -f2 "/proc/$pid/stat" | awk '{print $1}')" != Z ] && echo "$dir"
    done < "$WORK/pids.txt"
}
finished() { local pid dir; while read -r pid dir; do [ -f "$dir/metrics.json" ] && echo "$dir"; done < "$WORK/pids.txt"; }

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

bring_back() {  # OUT: at most 8 files of 16 MiB come back, two folders down (`run` and `finish` end with it)
    local out=$1 dir n=0
    # 1. The record of every run, finished or not (metrics, history, config, confusion matrix), and the logs.
    (cd "$WORK" && find . -path ./cache -prune -o -path ./site -prune -o -path ./mps -prune -o \
        \( -name metrics.json -o -name history.json -o -name config.yaml -o -name confusion_matrix.png \
           -o -name run.log -o -name bench.json -o -name 'profile_*.txt' \) -print | tar -czf "$out/runs.tar.gz" -T - logs plan.txt pids.txt)
    # 2. One weights-only best checkpoint a file (6-10 MB each), for the finished runs in plan order,
    # while they fit: seven files and 62 MiB at most. The rest keep their records only.
    local bytes=0 file
    while read -r dir; do
        file=$out/$(ckpt_name "${dir#"$WORK"/}")
        [ "$n" -lt 7 ] || { echo "no room for the checkpoint of $dir"; continue; }
        "$PYTHON" -c "import sys; from bionic.keep import weights_only; weights_only(*sys.argv[1:])" \
            "$dir/checkpoints/best.ckpt" "$file" || continue
        if [ $((bytes + $(stat -c %s "$file"))) -gt $((62 * 1048576)) ]; then
            echo "no room for the checkpoint of $dir"; rm -f "$file"; continue
        fi
        bytes=$((bytes + $(stat -c %s "$file"))); n=$((n + 1))
    done < <(finished)
    ls -la "$out"
}

collect() {  # FILES_AT: the folder the device tool put the returned files in
    local at=${1:?usage: scripts/gpu.sh collect FILES_AT} run rel ck root
    mkdir -p runs/gpu
    [ -f "$at/runs.tar.gz" ] || die "$at has no runs.tar.gz"
    tar -xzf "$at/runs.tar.gz" -C runs/gpu
    # Each brought-back best checkpoint back into its run folder, where `bionic keep` looks for it.
    local roots=()
    while read -r run; do
        run=${run%/metrics.json}; rel=${run#runs/gpu/}
        ck=$at/$(ckpt_name "$rel")
        if [ -f "$ck" ]; then mkdir -p "$run/checkpoints" && cp "$ck" "$run/checkpoints/best.ckpt"; fi
        roots+=("${rel%/*/seed_*}")
    done < <(find runs/gpu -path runs/gpu/logs -prune -o -name metrics.json -print | sort)
    # runs/gpu/ROOT/VARIANT/seed_S -> results/ROOT/runs/VARIANT/seed_S (ROOT may have several parts)
    while read -r root; do
        [ -n "$root" ] && "$LOCAL_PYTHON" -m bionic keep "runs/gpu/$root" "results/$root/runs"
    done < <(printf '%s\n' "${roots[@]}" | sort -u)
}

case "${1:-}" in
    pack|lean|unlean|run|finish|collect|plan|bring_back) cmd=$1; shift; "$cmd" "$@" ;;
    *) die "usage: scripts/gpu.sh pack DATA | lean | run | finish | unlean | collect FILES_AT | plan | bring_back OUT" ;;
esac
