#!/usr/bin/env python3
"""Where a benchmark phase's server time went: buckets a `perf record` of the server (made with
BENCH_PERF=1, target/perf-<phase>.data) by what each sampled function belongs to, and prints a
markdown table with the top functions.

    python3 tests/benches/profile.py target/perf-pull-postgresql.data [more.data ...]
"""
import re
import subprocess
import sys

BUCKETS = [
    ("allocator (malloc, free, mimalloc)", r"malloc|_int_free|\bfree\b|cfree|mi_|_mi_|realloc|calloc|tcache"),
    ("JSON (serde_json, Value maps)", r"serde_json|serde::|serde_core|indexmap|btree|format_escaped|itoa|ryu|visit_map|Value"),
    ("database client (diesel, tokio-postgres, SQLite)", r"diesel|tokio_postgres|postgres_protocol|postgres_types|sqlite3|deadpool|chrono"),
    ("HTTP (actix, http parsing, compression)", r"actix|h1::|httparse|http::|brotli|flate|zstd|mime"),
    ("crypto (P-256, SHA-256, HMAC, JWT)", r"p256|elliptic|primeorder|ecdsa|sha2|Sha256|hmac|jsonwebtoken|crypto_bigint|base64"),
    ("memcpy and string work", r"memmove|memcpy|memset|memcmp|strlen|alloc::string|alloc::fmt|core::fmt"),
    ("async runtime (tokio, futures)", r"tokio|futures|mio::|parking_lot|std::sync|crossbeam"),
    ("kernel (network, scheduling, syscalls)", r"^\[k\]"),
]


def rows(path):
    out = subprocess.run(
        ["perf", "report", "-i", path, "--no-children", "--sort", "symbol", "-g", "none",
         "--stdio", "-F", "overhead,sym"],
        capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(.*)$", line)
        if m:
            yield float(m.group(1)), m.group(2).strip()


def main():
    for path in sys.argv[1:]:
        buckets = {name: 0.0 for name, _ in BUCKETS}
        buckets["other (our code, std)"] = 0.0
        top = []
        for pct, sym in rows(path):
            name = sym[4:] if sym.startswith("[.] ") else sym
            top.append((pct, name))
            for bucket, pattern in BUCKETS:
                if re.search(pattern, sym):
                    buckets[bucket] += pct
                    break
            else:
                buckets["other (our code, std)"] += pct
        print(f"\n{path}\n\n| where | share of server CPU samples |\n|---|---:|")
        for bucket, pct in sorted(buckets.items(), key=lambda kv: -kv[1]):
            print(f"| {bucket} | {pct:.1f}% |")
        top.sort(reverse=True)
        print("\ntop functions: " + "; ".join(f"{n[:70]} {p:.1f}%" for p, n in top[:8]))


main()
