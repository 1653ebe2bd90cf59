#!/usr/bin/env bash
# Builds the counter agent from source, runs it under examples/counter/policy.yaml, and prints the
# run's audit. Run it twice: the count persists (kv lives in ./.ice), and each run has its own ledger.
set -euo pipefail
cd "$(dirname "$0")/../.."
ice() { node bin/ice.js "$@"; }

ice build guests/counter -o build/examples/counter.wasm
echo "\$ ice run build/examples/counter.wasm --policy examples/counter/policy.yaml --input \"${1:-hello}\""
ice run build/examples/counter.wasm --policy examples/counter/policy.yaml --input "${1:-hello}"
echo
echo "\$ ice audit show last"
ice audit show last
