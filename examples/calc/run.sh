#!/usr/bin/env bash
# Builds the calc component (Rust, its own WIT world) from source, calls some of its typed exports
# under examples/calc/policy.yaml — one governed, recorded run per call — and prints the audit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ice() { node bin/ice.js "$@"; }
# Echoes the command as one would type it (arguments with JSON or spaces in single quotes), then runs it.
show() {
  printf '$ ice'
  for a in "$@"; do if [[ $a =~ [^A-Za-z0-9._/:=-] ]]; then printf " '%s'" "$a"; else printf ' %s' "$a"; fi; done
  echo
  ice "$@" || true
  echo
}

ice build examples/calc -o build/examples/calc.wasm
show call build/examples/calc.wasm geometry.area --policy examples/calc/policy.yaml --args '{"s":{"tag":"rect","val":[{"x":0,"y":0},{"x":2,"y":3}]}}'
show call build/examples/calc.wasm divide --policy examples/calc/policy.yaml --args '{"a":"9007199254740993","b":3}'
show call build/examples/calc.wasm remember --policy examples/calc/policy.yaml --args '{"key":"notes/today","value":"ship it"}'
show call build/examples/calc.wasm remember --policy examples/calc/policy.yaml --args '{"key":"secrets/token","value":"x"}'
show audit list --limit 4
show audit show last
