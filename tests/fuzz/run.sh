#!/usr/bin/env bash
# Contract fuzzing: schemathesis generates requests from openapi.yaml (valid and invalid) and
# fails on any 5xx or any status the contract does not document, against the real server on
# SQLite and, when FUZZ_DATABASE_URL (or TEST_DATABASE_URL) names a PostgreSQL, on PostgreSQL
# too. Seeded and bounded:
#
#   bash tests/fuzz/run.sh                      # FUZZ_SEED=20261201 FUZZ_EXAMPLES=25 by default
#   FUZZ_SEED=7 FUZZ_EXAMPLES=200 TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test bash tests/fuzz/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

SEED="${FUZZ_SEED:-20261201}"
EXAMPLES="${FUZZ_EXAMPLES:-25}"
PG_URL="${FUZZ_DATABASE_URL:-${TEST_DATABASE_URL:-}}"
# The venv lives in the user's cache, keyed by the pinned requirements: a fresh clone on the
# same machine reuses it, a changed pin gets a new one.
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/yunlian/fuzz-$(sha256sum tests/fuzz/requirements.txt | cut -c1-12)"
ADMIN_PHONE=13800000000
ADMIN_PASSWORD=fuzz2026pass

if [ ! -x "$VENV/bin/schemathesis" ]; then
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r tests/fuzz/requirements.txt
fi
cargo build -q -p yunlian-api --locked
BIN=target/debug/yunlian

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

fuzz_one() { # engine database_url
  local engine="$1" url="$2" dir port pid token
  dir=$(mktemp -d)
  port=$(free_port)
  YUNLIAN_BIND="127.0.0.1:$port" YUNLIAN_DATA_DIR="$dir" DATABASE_URL="${url:-sqlite://$dir/yunlian.db}" \
    YUNLIAN_ADMIN_PHONE=$ADMIN_PHONE YUNLIAN_ADMIN_PASSWORD=$ADMIN_PASSWORD RUST_LOG=warn \
    "$BIN" >"$dir/server.log" 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null || true' RETURN
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  token=$(curl -sf "http://127.0.0.1:$port/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"phone\":\"$ADMIN_PHONE\",\"password\":\"$ADMIN_PASSWORD\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  echo "== fuzzing the $engine server (seed $SEED, $EXAMPLES examples per operation)"
  # logout and changePassword would end the fuzzer's own session mid-run; streamEvents never
  # ends (its bad input is tested end to end, tests/events.rs).
  "$VENV/bin/schemathesis" run openapi.yaml --url "http://127.0.0.1:$port" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance \
    --exclude-operation-id logout --exclude-operation-id changePassword \
    --exclude-operation-id streamEvents \
    --seed "$SEED" --max-examples "$EXAMPLES" --no-shrink \
    --workers 1 --warnings off --request-timeout 10
  # A 5xx the fuzzer might have missed still shows in the server's own log.
  if grep -q 'request failed' "$dir/server.log"; then
    echo "the server answered 5xx:"; grep 'request failed' "$dir/server.log" | head -20; return 1
  fi
}

# Both engines at once (each fuzzer waits on its server far more than it computes), each into
# its own log, shown whole when it ends; either failing fails the run.
logs=$(mktemp -d)
fuzz_one sqlite "" >"$logs/sqlite.log" 2>&1 &
pids=("$!")
names=(sqlite)
if [[ "$PG_URL" == postgres* ]]; then
  db="yl_fuzz_$(date +%s)_$$"
  psql "$PG_URL" -qc "CREATE DATABASE $db" >/dev/null
  fuzz_one postgres "${PG_URL%/*}/$db" >"$logs/postgres.log" 2>&1 &
  pids+=("$!")
  names+=(postgres)
fi
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then failed=1; fi
  cat "$logs/${names[$i]}.log"
done
if [[ "$PG_URL" == postgres* ]]; then
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
fi
[ "$failed" = 0 ] || { echo "contract fuzzing failed"; exit 1; }
