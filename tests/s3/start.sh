#!/usr/bin/env bash
# Starts moto's S3-compatible server on a free loopback port (installing it into a venv in the
# user's cache the first time), creates the test bucket, and prints the endpoint. `.ci/run` uses it
# so the image tests of the PostgreSQL + Redis run store their objects through the S3 path:
#
#   endpoint=$(bash tests/s3/start.sh)   # http://127.0.0.1:PORT, bucket yunlian-test
#   kill "$(cat target/s3.pid)"
#
# A first start on a cold machine imports a few hundred modules, so it is given a minute; a venv
# that cannot start the server (left half-installed by an interrupted run) is made anew once, and
# what the server printed is shown when it still fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The venv lives in the user's cache, keyed by the pinned requirements (see tests/fuzz/run.sh).
VENV="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/yunlian/s3-$(sha256sum tests/s3/requirements.txt | cut -c1-12)"
mkdir -p target

install() {
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/s3/requirements.txt >&2
}

start() {
  local port pid
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >target/s3.log 2>&1 &
  pid=$!
  echo "$pid" >target/s3.pid
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || break
    if curl -sf --noproxy '*' "http://127.0.0.1:$port/" >/dev/null 2>&1; then
      curl -sf --noproxy '*' -X PUT "http://127.0.0.1:$port/yunlian-test" >/dev/null && {
        echo "http://127.0.0.1:$port"
        return 0
      }
    fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  return 1
}

[ -x "$VENV/bin/moto_server" ] || install
start && exit 0
echo "moto did not start from $VENV; installing it again" >&2
tail -n 20 target/s3.log >&2 || true
install
start && exit 0
echo "moto did not start; its log:" >&2
tail -n 40 target/s3.log >&2 || true
exit 1
