#!/usr/bin/env bash
# Runs the MQTT.js integration test (test_mqttjs.mjs) against BULWARK_BIN,
# for ctest (integration_mqttjs). First installs the pinned packages with
# `npm ci` when node_modules is missing or came from another
# package-lock.json (the lock's hash is kept in node_modules/.bw-lock-hash);
# a lock on package-lock.json keeps two builds' runs from installing at
# once. Without node (>= 18) or npm the test fails rather than skips:
# scripts/deps installs them.
#
#   tests/integration/js/run.sh BULWARK_BIN
set -euo pipefail
bin=$(realpath "${1:?usage: run.sh BULWARK_BIN}")
cd "$(dirname "$0")"

fail() {
	echo "FAIL $*"
	exit 1
}

command -v node >/dev/null || fail "node not found (scripts/deps installs nodejs and npm)"
node -e 'process.exit(+process.versions.node.split(".")[0] < 18 ? 1 : 0)' ||
	fail "node $(node --version) is older than 18, which mqtt v5 needs"

want=$(sha256sum package-lock.json | cut -d' ' -f1)
exec 9<package-lock.json
flock 9
if [ "$(cat node_modules/.bw-lock-hash 2>/dev/null || true)" != "$want" ]; then
	command -v npm >/dev/null || fail "npm not found (scripts/deps installs nodejs and npm)"
	npm ci --no-audit --no-fund
	echo "$want" >node_modules/.bw-lock-hash
fi
exec 9<&-

exec node test_mqttjs.mjs "$bin"
