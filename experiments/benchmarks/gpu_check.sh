#!/usr/bin/env bash
# One batched run on a lent GPU machine (../shared/GPU.md), from the repository root:
#
#   bash experiments/benchmarks/gpu_check.sh [items...]      (default: all items below)
#
# Items: env, tests (the default suite on this machine's JAX, CPU backend: API compatibility
# with its JAX version), flows (a tiny flows benchmark: its header must name the GPU),
# inception (the FID Inception's forward pass), vae, gan, unet (their GPU items, bf16).
# Missing pure-Python packages travel as wheels in .whl/ (the device README's recipe). Every
# step has its own timeout and writes its log under $OUT as it goes.
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
ITEMS=${*:-env tests flows inception vae gan unet}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: runs and logs one item, whatever the others do
  local name=$1 seconds=$2
  shift 2
  echo "=== $name ($(date +%T))"
  timeout "$seconds" "$@" > "$OUT/$name.log" 2>&1
  echo "=== $name exit $? ($(date +%T))"
  tail -n 25 "$OUT/$name.log"
}

for item in $ITEMS; do
  case $item in
    env) step env 60 bash -c 'python3 -c "import jax, flax, optax; print(\"jax\", jax.__version__, \
\"flax\", flax.__version__, \"optax\", optax.__version__, jax.devices())"; nvidia-smi \
--query-gpu=name,clocks.sm,clocks.mem,memory.used,memory.total --format=csv' ;;
    tests) step tests 300 env JAX_PLATFORMS=cpu GEN_TEST_BUDGET_S=0 \
      python3 -m pytest -n 12 -q -p no:cacheprovider -W error::DeprecationWarning:gen \
      --deselect tests/test_configs.py::test_every_config_switches_to_every_data_source ;;
    flows) step flows 150 python3 -m experiments.benchmarks.flows --layers 2 --batch 4096 \
      --repeats 3 --rounds 1 --libs gen ;;
    inception) step inception 200 python3 -m experiments.benchmarks.metrics \
      --items inception_speed --batch 256 --repeats 5 ;;
    vae) step vae 200 python3 -m experiments.benchmarks.vae --items gpu ;;
    gan) step gan 200 python3 -m experiments.benchmarks.gan --items gpu ;;
    unet) step unet 240 python3 -m experiments.benchmarks.diffusion --items gpu --repeats 10 ;;
    *) echo "unknown item $item" ;;
  esac
done
