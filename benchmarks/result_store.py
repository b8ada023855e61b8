"""Result store throughput: writing and reading task results, to a local folder and to S3.

    python benchmarks/result_store.py                       # 1 KB x 200 and 1 MB x 20, local and S3
    python benchmarks/result_store.py --small 20 --large 2 --mb 1

``ResultStore.save`` (cloudpickle, sha256, write) and ``results.load`` (read, sha256 check,
unpickle) of bytes payloads, through fsspec: a temporary folder, and a moto S3 server started
here on a free port (``moto[server]``, s3fs). Prints objects/s and MB/s for each.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nbflow.core.results import ResultStore, load  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(url: str, size: int, count: int) -> tuple[float, float]:
    """Seconds to write ``count`` payloads of ``size`` bytes, and to read them back."""
    store = ResultStore(url)
    payload = os.urandom(size)
    run_id = uuid.uuid4().hex[:12]
    start = time.perf_counter()
    refs = [store.save(run_id, "task", str(i), payload) for i in range(count)]
    written = time.perf_counter() - start
    start = time.perf_counter()
    for ref in refs:
        assert load(ref) == payload
    return written, time.perf_counter() - start


def s3_url() -> tuple[str, object]:
    """A bucket on a moto S3 server started here; fsspec configured for it."""
    import boto3
    import fsspec.config
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    fsspec.config.conf["s3"] = {"endpoint_url": endpoint}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
    return "s3://bench/results", server


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=200, help="how many 1 KB results")
    parser.add_argument("--large", type=int, default=20, help="how many large results")
    parser.add_argument("--mb", type=float, default=1.0, help="size of a large result in MB")
    args = parser.parse_args()
    cases = [(1024, args.small), (int(args.mb * 1_000_000), args.large)]
    url, server = s3_url()
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print(
        "| store | result size | results | write (results/s) | write (MB/s) | read (results/s) | read (MB/s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    try:
        with tempfile.TemporaryDirectory() as folder:
            for where, target in (("local folder", folder), ("S3 (moto server)", url)):
                for size, count in cases:
                    written, read = measure(target, size, count)
                    mb = size * count / 1e6
                    print(
                        f"| {where} | {size / 1e3:,.0f} KB | {count} | {count / written:,.0f} | {mb / written:,.1f} "
                        f"| {count / read:,.0f} | {mb / read:,.1f} |"
                    )
    finally:
        server.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
