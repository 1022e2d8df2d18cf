#!/usr/bin/env bash
# The spectra model's checks that need a GPU (issue 7), as one call on a GPU machine (~8-9 min on an H100 for steps
# 1-5, an estimate; step 6 adds up to 2 x RUN_LIMIT_S):
#
#   bash benchmarks/gpu_checks.sh            # results under $OUT (default ./gpu_checks)
#   BUDGET_S=420 bash benchmarks/gpu_checks.sh   # start no step after 420 s (the steps before it come back whole)
#
# The steps, most important first (a call cut off by its time limit still returns those done, under $OUT):
# 1. benchmarks/spectra.py: the sampler's spectra/s at the default (3 DDIM steps) and the earlier default (6 dpm++2m
#    steps), eager and compiled, batch 1024 (the command of docs/benchmarks.md): the 10,000 spectra/s target.
# 2. `hicgen spectra` end to end on $EVENTS trento ICs at K = 1 and 4 (its last line gives the rate), at K = 1 also
#    reading on 4 processes (--read-processes 4) instead of the one thread of the default and with --particles
#    into HepMC3, at K = 4 also with --compile --batch-size $BATCH (the rate after the first block leaves the
#    compilation out).
# 3. tests/test_cuda.py: CUDA graphs with a padded last batch, the compiled network in a graph, device-side
#    histograms, run_spectra on CUDA, the stage-compiled hydro step in Triton, each against its eager twin.
# 4. benchmarks/spectra_io.py: the host side (reading, resampling, writing with 1 / 4 / 8 threads, and the ceiling,
#    alone and with a stub network that waits 100 us per spectrum: a GPU at 10,000 spectra/s, reading on a thread
#    and on 4 processes), the ceiling at K = 1 with the particles written too (HDF5, HepMC3) and the particle
#    sampling alone on 1 / 4 (the default) / 8 threads, then the same ceiling
#    on a copy of the ICs in the real trento program's layout (float64, one gzip-4 chunk per event).
# 5. benchmarks/hydro.py throughput --decays: the reference chain's records/s on the GPU without and with
#    resonance decays ($HYDRO_EVENTS min-bias events in one batch), when pythia8mc imports (carry its cp312 wheel in
#    .whl beside zlib-ng's: docs/benchmarks.md).
# 6. `hicgen run` of the shipped O-O and Pb-Pb point-cloud models into HDF5 at the defaults ($RUN_EVENTS_OO and
#    $RUN_EVENTS_PBPB events, each stopped by a SIGTERM after $RUN_LIMIT_S s): the events/s of its summary against the
#    product targets (O-O >= 10,000 and Pb-Pb >= 700 events/s on one H100).
# Runs from the repository root without installing hicgen (PYTHONPATH); needs torch with CUDA, h5py, typer, rich,
# safetensors, scipy and pytest, which the lent GPU machines have. The big scratch files are deleted at the end.
# DEVICE=cpu SPECTRA=64 EVENTS=32 BATCH=32 HYDRO_EVENTS=2 RUN_EVENTS_OO=64 RUN_EVENTS_PBPB=1 bash
# benchmarks/gpu_checks.sh runs the same steps small on a CPU (step 1 skips).
set -euo pipefail
OUT=${OUT:-gpu_checks}
DEVICE=${DEVICE:-cuda}
SPECTRA=${SPECTRA:-16384}
EVENTS=${EVENTS:-4096}
BATCH=${BATCH:-1024}
HYDRO_EVENTS=${HYDRO_EVENTS:-64}
RUN_EVENTS_OO=${RUN_EVENTS_OO:-200000}
RUN_EVENTS_PBPB=${RUN_EVENTS_PBPB:-10000}
RUN_LIMIT_S=${RUN_LIMIT_S:-75}
BUDGET_S=${BUDGET_S:-0}  # 0: no budget
mkdir -p "$OUT"
# zlib-ng (a hicgen dependency the lent machines lack): from wheels carried in .whl (docs/benchmarks.md), if any
if [ -d .whl ] && ! python -c "import zlib_ng" 2>/dev/null; then
    python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
date -u | tee "$OUT/date.txt"
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
    GRAPHS=on
    PRECISION=bf16
else
    GRAPHS=off
    PRECISION=fp32
fi
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/date.txt"
# the writers deflate with zlib-ng where it is installed (a hicgen dependency; carry its wheel), else stdlib zlib
python -c "from hicgen.io import h5columns as h; print('deflate', h.deflate_library.__name__, 'level', h.DEFLATE_LEVEL)" \
    | tee -a "$OUT/date.txt"

stamp() { echo "$SECONDS s: $1" | tee -a "$OUT/steps.txt"; }  # elapsed time per step, for a run cut off by a limit
begin() {  # stamp step $1 and run it, unless BUDGET_S seconds have passed: then say so and skip it
    if [ "$BUDGET_S" -gt 0 ] && [ "$SECONDS" -ge "$BUDGET_S" ]; then
        echo "$SECONDS s: skipped $1 (past BUDGET_S=$BUDGET_S)" | tee -a "$OUT/steps.txt"
        return 1
    fi
    stamp "$1"
}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if begin "sampler speed"; then
    python benchmarks/spectra.py --model weights/spectra --device "$DEVICE" --precision "$PRECISION" \
        --cuda-graphs "$GRAPHS" --compile off on --memory-format channels_last --batch-size "$BATCH" \
        --samplers ddim dpm++2m --steps 3 6 --spectra "$SPECTRA" --repeats 3 --json "$OUT/speed_default3.json" \
        2>&1 | tee "$OUT/speed_default3.txt"
fi
if begin "end to end"; then
    python -m hicgen truth trento --events "$EVENTS" --seed 9 --out "$scratch/ic.h5" --device "$DEVICE"
    for k in 1 4; do
        python -m hicgen spectra --trento "$scratch/ic.h5" --eta-s 0.1 -k "$k" --device "$DEVICE" \
            --out "$scratch/s$k.h5" 2>&1 | tail -n 1 | tee "$OUT/spectra_k$k.txt"
    done
    python -m hicgen spectra --trento "$scratch/ic.h5" --eta-s 0.1 -k 1 --device "$DEVICE" --read-processes 4 \
        --out "$scratch/s1p.h5" 2>&1 | tail -n 1 | tee "$OUT/spectra_k1_read_processes4.txt"
    # with particles into HepMC3 (formatted on the writer's thread pool): whether the writer keeps up
    python -m hicgen spectra --trento "$scratch/ic.h5" --eta-s 0.1 -k 1 --device "$DEVICE" \
        --out "$scratch/s1h.h5" --particles "$scratch/p1.hepmc" 2>&1 | tail -n 1 | tee "$OUT/spectra_k1_particles_hepmc.txt"
    rm -f "$scratch/p1.hepmc"
    # the fastest settings end to end: compiled network, batches of $BATCH; the line's rate after the first block
    # leaves out the compilation (30-45 s)
    python -m hicgen spectra --trento "$scratch/ic.h5" --eta-s 0.1 -k 4 --device "$DEVICE" --compile --batch-size "$BATCH" \
        --out "$scratch/s4c.h5" 2>&1 | tail -n 1 | tee "$OUT/spectra_k4_compiled.txt"
fi
if begin "test_cuda"; then
    python -m pytest tests/test_cuda.py -q -p no:cacheprovider 2>&1 | tee "$OUT/test_cuda.txt" || true  # go on to time
fi
if begin "host side"; then
    python benchmarks/spectra_io.py --spectra "$scratch/s4.h5" --trento "$scratch/ic.h5" --records 8192 \
        --threads 1 4 8 --samples-per-ic 1 4 --device-us 0 100 --read-processes 0 4 --repeats 2 --json "$OUT/io.json" \
        2>&1 | tee "$OUT/io.txt"
    python benchmarks/spectra_io.py --spectra "$scratch/s4.h5" --trento "$scratch/ic.h5" --records 1024 --threads 1 4 8 \
        --samples-per-ic 1 --device-us 100 --particles none .h5 .hepmc --repeats 1 --json "$OUT/io_particles.json" \
        2>&1 | tee "$OUT/io_particles.txt"
    python benchmarks/spectra_io.py --spectra "$scratch/s4.h5" --trento "$scratch/ic.h5" --real-layout --records 2048 \
        --threads 8 --samples-per-ic 1 4 --device-us 0 100 --repeats 2 --json "$OUT/io_real.json" 2>&1 | tee "$OUT/io_real.txt"
fi
if begin "hydro with decays"; then
    if python -c "import pythia8mc" 2>/dev/null; then
        python benchmarks/hydro.py throughput --device "$DEVICE" --events "$HYDRO_EVENTS" --decays 2>&1 \
            | tee "$OUT/hydro_decays.json"
    else
        echo "pythia8mc does not import: no hydro timing with decays" | tee "$OUT/hydro_decays.json"
    fi
fi
if begin "point-cloud run"; then
    # a run stopped by the SIGTERM still prints its summary (events/s of the whole events written) and exits 130
    for system in OO PbPb; do
        events=$RUN_EVENTS_OO; [ "$system" = PbPb ] && events=$RUN_EVENTS_PBPB
        timeout -s TERM "$RUN_LIMIT_S" python -m hicgen run --system "$system" --events "$events" --device "$DEVICE" \
            --out "$scratch/run_$system.h5" 2>&1 | tail -n 16 | tee "$OUT/run_$system.txt" || true
        rm -f "$scratch/run_$system.h5"
    done
fi
stamp "done"
