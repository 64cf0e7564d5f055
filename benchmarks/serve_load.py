"""Load on ``imagen-video serve``: 32 requests from 8 concurrent clients against the shipped demo,
beside the same prompts as sequential ``imagen-video generate`` processes in the same run.

Every client submits its share of the prompts one after another (``POST /v1/videos``, then polling
``GET /v1/videos/{id}`` until completed). Reports throughput (videos per second over the whole load),
p50 and p95 latency (submission to completion), checks that every request completed once (none lost
or duplicated in ``GET /v1/videos``), and the throughput of fresh ``generate`` processes run one after
another with the same prompts and seeds. The machine's load average (``os.getloadavg``) is recorded
before and after, since other work on the machine changes every number. ``--gpu`` adds the warm
latency of one video alone and the videos per second of a batch of 16.

    python benchmarks/serve_load.py --threads 1 --out benchmarks/results/serve_load_cpu.json
    python benchmarks/serve_load.py --device cuda --threads 0 --gpu --sequential 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

PROMPTS = Path(__file__).with_name("world_prompts.txt")
POLL_S = 0.1  # each client polls its job this often (polls share the server's CPU with sampling)


def start_server(args: argparse.Namespace, store: Path, max_batch: int) -> tuple[subprocess.Popen, str]:
    """``imagen-video serve`` on a free loopback port; returns once ``/health`` answers."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "imagen_video.cli", "serve", "--model", args.model]
    command += ["--store", str(store), "--port", str(port), "--max-batch", str(max_batch)]
    command += ["--batch-wait-ms", str(args.batch_wait_ms)]
    command += ["--device", args.device] + (["--threads", str(args.threads)] if args.threads else [])
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("the server did not start")


def run_job(client: httpx.Client, body: dict, poll: float = POLL_S) -> tuple[str, float]:
    """Submit one request and poll it every ``poll`` s to completion; (id, seconds from submission
    to completion)."""
    start = time.perf_counter()
    response = client.post("/v1/videos", json=body)
    response.raise_for_status()
    job_id = response.json()["id"]
    while True:
        job = client.get(f"/v1/videos/{job_id}").json()
        if job["status"] == "completed":
            return job_id, time.perf_counter() - start
        if job["status"] == "failed":
            raise SystemExit(f"job {job_id} failed: {job['error']}")
        time.sleep(poll)


def load(url: str, prompts: list[str], clients: int) -> dict:
    """``clients`` threads share ``prompts`` (seed = the prompt's index); throughput and latencies."""
    results: list[tuple[str, float]] = []
    lock = threading.Lock()

    def client_loop(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=600.0) as client:
            for index in range(worker, len(prompts), clients):
                outcome = run_job(client, {"prompt": prompts[index], "seed": index})
                with lock:
                    results.append(outcome)

    start = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    listed = httpx.get(f"{url}/v1/videos", params={"limit": 100}, timeout=60).json()["data"]
    ids = [job_id for job_id, _ in results]
    latencies = sorted(seconds for _, seconds in results)
    return {
        "requests": len(prompts),
        "completed": len(results),
        "lost_or_duplicated": len(prompts) - len(set(ids) & {job["id"] for job in listed}),
        "wall_s": round(wall, 2),
        "videos_per_s": round(len(results) / wall, 4),
        "latency_p50_s": round(statistics.median(latencies), 2),
        "latency_p95_s": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 2),
        "batch_sizes": sorted({job["batch_size"] for job in listed}),
    }


def sequential(args: argparse.Namespace, prompts: list[str], out_dir: Path) -> dict:
    """Fresh ``generate`` processes, one after another, with the same prompts and seeds."""
    start = time.perf_counter()
    for index, prompt in enumerate(prompts):
        command = [sys.executable, "-m", "imagen_video.cli", "generate", prompt, "--model", args.model]
        command += ["--seed", str(index), "--quiet", "--device", args.device]
        command += ["-o", str(out_dir / f"{index}.mp4")]
        command += ["--threads", str(args.threads)] if args.threads else []
        subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - start
    rate = round(len(prompts) / wall, 4)
    return {"processes": len(prompts), "wall_s": round(wall, 2), "videos_per_s": rate}


def gpu_numbers(args: argparse.Namespace, store: Path) -> dict:
    """Warm latency of one video alone, and videos per second of one batch of 16 (``--max-batch 16``)."""
    process, url = start_server(args, store, 16)
    try:
        with httpx.Client(base_url=url, timeout=600.0) as client:
            for seed in range(3):  # warm-up: first CUDA calls, allocator, cuDNN choices
                run_job(client, {"prompt": "a red circle moving up", "seed": seed})
            prompt = "a red circle moving up"
            single = [run_job(client, {"prompt": prompt, "seed": seed}, 0.005)[1] for seed in range(5)]
            batch = run_job(client, {"prompt": prompt, "seed": 0, "num_videos": 16}, 0.005)[1]
    finally:
        process.terminate()
        process.wait(60)
    latency = round(statistics.median(single), 3)
    return {"warm_single_latency_s": latency, "batch16_videos_per_s": round(16 / batch, 2)}


def main() -> None:
    """Run the load, the sequential baseline and (``--gpu``) the GPU numbers; print and save JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="demo")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--batch-wait-ms", type=float, default=50.0)
    parser.add_argument("--sequential", type=int, help="generate processes (default: --requests)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's choice)")
    parser.add_argument("--gpu", action="store_true", help="also the warm single latency and batch-16 rate")
    parser.add_argument("--out", type=Path, help="write the result as JSON")
    args = parser.parse_args()
    lines = [line.strip() for line in PROMPTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    prompts = [lines[i % len(lines)] for i in range(args.requests)]
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.machine()}
    result.update(cpus=os.cpu_count(), device=args.device, threads=args.threads, model=args.model)
    result["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_server(args, Path(tmp) / "store", args.max_batch)
        try:
            result["serve"] = load(url, prompts, args.clients)
        finally:
            process.terminate()
            process.wait(60)
        count = args.sequential if args.sequential is not None else args.requests
        result["sequential_generate"] = sequential(args, prompts[:count], Path(tmp))
        if args.gpu:
            result["gpu"] = gpu_numbers(args, Path(tmp) / "store_gpu")
    baseline = result["sequential_generate"]["videos_per_s"]
    result["speedup"] = round(result["serve"]["videos_per_s"] / baseline, 2)
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
