#!/usr/bin/env bash
# Builds the fetcher agent, starts a local stand-in API on 127.0.0.1:8787, and runs the agent under
# examples/status/policy.yaml twice: once on the allowed URL (the host injects the API token from a
# secrets file; the guest never sees it), once on a URL the policy does not allow. Then the audit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ice() { node bin/ice.js "$@"; }

secrets="$(mktemp -d)/secrets.yaml"
( umask 077; printf 'STATUS_API_TOKEN: tok-%s\n' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" > "$secrets" )
STATUS_API_TOKEN_EXPECTED="$(sed 's/^STATUS_API_TOKEN: //' "$secrets")" node examples/status/api.mjs > /dev/null &
api=$!
trap 'kill $api 2>/dev/null || true' EXIT
sleep 0.3

ice build guests/fetcher -o build/examples/fetcher.wasm
echo "\$ ice run build/examples/fetcher.wasm --policy examples/status/policy.yaml --secrets <file> --input http://127.0.0.1:8787/v1/status"
ice run build/examples/fetcher.wasm --policy examples/status/policy.yaml --secrets "$secrets" --input http://127.0.0.1:8787/v1/status
echo
echo "\$ ice audit show last"
ice audit show last
echo
echo "\$ ice run build/examples/fetcher.wasm --policy examples/status/policy.yaml --secrets <file> --input http://169.254.169.254/latest/meta-data/"
ice run build/examples/fetcher.wasm --policy examples/status/policy.yaml --secrets "$secrets" --input http://169.254.169.254/latest/meta-data/ || true
