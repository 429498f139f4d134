#!/usr/bin/env bash
# How long each service with a database takes to start: from exec to its first /health/ready 200, three runs each.
# It runs './platform up' in the checkout given (default: this one), restarts each service with its own command line and
# environment, and ends with './platform down'. Prints 'service_start_<name>_s: <seconds>' lines.
# Usage (as root): tests/Platform.Benchmarks/service-start.sh [checkout]
set -uo pipefail
dir=$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd)
cd "$dir"
./platform up >/dev/null 2>&1 || { echo "'./platform up' failed in $dir" >&2; exit 1; }
trap './platform down >/dev/null 2>&1' EXIT
for name in provisioning tenancy networking telemetry; do
  pid=$(cat "$dir/.platform/dev/run/$name.pid")
  port=$(tr '\0' '\n' < "/proc/$pid/environ" | sed -n 's|^ASPNETCORE_URLS=http://127.0.0.1:||p')
  mapfile -d '' command < "/proc/$pid/cmdline"
  mapfile -d '' environment < "/proc/$pid/environ"
  cwd=$(readlink "/proc/$pid/cwd")
  kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  for _ in 1 2 3; do
    start=$(date +%s.%N)
    (cd "$cwd" && exec env -i "${environment[@]}" "${command[@]}" >/dev/null 2>&1) &
    child=$!
    until [[ $(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/ready") == 200 ]]; do sleep 0.05; done
    echo "service_start_${name}_s: $(echo "$(date +%s.%N) - $start" | bc)"
    kill "$child"
    wait "$child" 2>/dev/null
  done
done
