"""Cost of verifying weights against their recorded sha256 (docs/reliability.md).

Hashes the shipped demo cascade's five weights files (warm page cache, best of ``--repeats``) and
projects the time to the paper cascade's 11.5B float32 parameters at the measured rate:

    python benchmarks/verify_cost.py [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from imagen_video.cascade.registry import shipped_cascade_dir
from imagen_video.cascade.stage_io import WEIGHTS_FILE
from imagen_video.integrity import file_sha256
from imagen_video.models.presets import paper_parameter_counts


def measure(repeats: int) -> dict[str, float]:
    """Seconds to hash the demo cascade (best of ``repeats``), its bytes, the rate and the projection."""
    files = sorted(shipped_cascade_dir("demo").glob(f"*/{WEIGHTS_FILE}"))
    size = sum(os.path.getsize(f) for f in files)
    for path in files:  # warm the page cache: the measurement is hashing, not disk reads
        file_sha256(path)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in files:
            file_sha256(path)
        times.append(time.perf_counter() - start)
    seconds = min(times)
    paper_bytes = paper_parameter_counts()["total"] * 4
    rate = size / seconds
    return {
        "demo_files": len(files),
        "demo_bytes": size,
        "demo_seconds": seconds,
        "bytes_per_second": rate,
        "paper_bytes": paper_bytes,
        "paper_seconds_projected": paper_bytes / rate,
    }


def main() -> None:
    """Print (and optionally save) the measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    result = measure(args.repeats)
    print(
        f"demo cascade: {result['demo_files']} files, {result['demo_bytes'] / 1e6:.1f} MB hashed in "
        f"{result['demo_seconds'] * 1e3:.0f} ms ({result['bytes_per_second'] / 1e6:.0f} MB/s); paper "
        f"cascade: {result['paper_bytes'] / 1e9:.1f} GB -> {result['paper_seconds_projected']:.0f} s"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
