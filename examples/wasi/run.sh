#!/usr/bin/env bash
# Builds the JavaScript agent in guests/js/wasi-agent with componentize-js (~15 s), runs it under
# examples/wasi/policy.yaml: once reading its mounted file, once trying to write to that read-only
# mount. Then the audit of the second run, refusals only.
set -euo pipefail
cd "$(dirname "$0")/../.."
ice() { node bin/ice.js "$@"; }

ice build guests/js/wasi-agent -o build/examples/wasi-agent.wasm
echo "\$ ice run build/examples/wasi-agent.wasm --policy examples/wasi/policy.yaml --input read"
ice run build/examples/wasi-agent.wasm --policy examples/wasi/policy.yaml --input read
echo "\$ ice run build/examples/wasi-agent.wasm --policy examples/wasi/policy.yaml --input write-ro"
ice run build/examples/wasi-agent.wasm --policy examples/wasi/policy.yaml --input write-ro
echo
echo "\$ ice audit show last --denied"
ice audit show last --denied
