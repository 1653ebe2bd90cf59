#!/usr/bin/env bash
# Builds the two agents, starts `ice serve` on a fresh state dir and a free port, invokes the writer
# (its events wake the indexer), shows both agents, the trace of the runs the writer caused, and the
# lifecycle records; then stops the server with SIGTERM (it drains).
set -euo pipefail
cd "$(dirname "$0")/../.."
ice() { node bin/ice.js "$@"; }
state=$(mktemp -d)
ice build guests/event-emitter -o build/examples/notes/writer.wasm >/dev/null
ice build guests/hello -o build/examples/notes/indexer.wasm >/dev/null
NOTES_HOOK_SECRET=example-secret ICE_LOG_LEVEL=warn node bin/ice.js serve --config examples/notes/ice.yaml --state "$state" --listen 127.0.0.1:0 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
until [ -f "$state/serve/server.json" ]; do sleep 0.1; done
url=$(node -e "console.log(require('$state/serve/server.json').url)")
token=$(cat "$state/serve/token")
echo "\$ curl -X POST $url/v1/agents/writer/invoke -d '{\"input\":\"notes.added buy milk\\nnotes.deleted old\"}'"
run=$(curl -s -X POST -H "Authorization: Bearer $token" "$url/v1/agents/writer/invoke" -d '{"input":"notes.added buy milk\nnotes.deleted old"}' | tee /dev/stderr | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).run.runId))")
echo
sleep 0.5
echo
echo "\$ ice agents list"
ice agents list --state "$state"
echo
echo "\$ ice audit trace $run"
ice audit trace "$run" --state "$state"
echo
echo "\$ ice audit list"
ice audit list --state "$state"
kill -TERM $server
wait $server || true
trap - EXIT
