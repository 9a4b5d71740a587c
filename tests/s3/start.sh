#!/usr/bin/env bash
# Starts moto's S3-compatible server on a free loopback port (installing it into a venv in the
# user's cache the first time), creates the test bucket, and prints the endpoint. `.ci/run` uses it
# so the image tests of the PostgreSQL + Redis run store their objects through the S3 path:
#
#   endpoint=$(bash tests/s3/start.sh)   # http://127.0.0.1:PORT, bucket yunlian-test
#   kill "$(cat target/s3.pid)"
set -euo pipefail
cd "$(dirname "$0")/../.."
# The venv lives in the user's cache, keyed by the pinned requirements (see tests/fuzz/run.sh).
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/yunlian/s3-$(sha256sum tests/s3/requirements.txt | cut -c1-12)"
if [ ! -x "$VENV/bin/moto_server" ]; then
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q -r tests/s3/requirements.txt >&2
fi
mkdir -p target
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >target/s3.log 2>&1 &
echo $! >target/s3.pid
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf -X PUT "http://127.0.0.1:$port/yunlian-test" >/dev/null || { echo "moto did not start" >&2; exit 1; }
echo "http://127.0.0.1:$port"
