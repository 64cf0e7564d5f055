"""`imagen-video serve`: one long-lived process that loads the cascades and the text encoder once and
serves a web page and an HTTP job API (docs/serve.md).

Arguments are checked before any network loads. The server binds 127.0.0.1 unless told otherwise;
binding another address without ``--api-key-env`` prints a warning.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from imagen_video.cli import UserError

if TYPE_CHECKING:
    from imagen_video.serve.store import JobStore


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `serve` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a generation web page and an HTTP job API from one warm process",
        description="Load the cascade(s) once and serve a Gradio page at / and a job API at /v1/videos "
        "(OpenAPI docs at /docs); requests with the same settings share batches. Needs the 'serve' extra.",
    )
    parser.add_argument(
        "--model",
        action="append",
        metavar="NAME|DIR",
        help="cascade to serve: demo, demo-distilled or a cascade directory; repeat to serve several "
        "(the first is the default; default: the shipped default, demo-distilled)",
    )
    parser.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="DIR[:SCALE]",
        help="merge a LoRA adapter into the first --model at load time (docs/finetuning.md); repeatable",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--max-batch", type=int, default=8, metavar="N", help="videos per batch (default 8)")
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=50.0,
        metavar="MS",
        help="how long a batch that is not full waits for more jobs (default 50)",
    )
    parser.add_argument(
        "--queue-size", type=int, default=64, metavar="N", help="queued jobs before 429 (default 64)"
    )
    parser.add_argument("--store", metavar="DIR", help="job store (default: a per-user data directory)")
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require 'Authorization: Bearer <key>' on every request, the key read from environment VAR",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="auto, cpu, cuda, cuda:N or mps (default: auto: CUDA, then MPS, then CPU)",
    )
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch")
    parser.set_defaults(func=run)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _api_key(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable, "")
    if not key.strip():
        raise UserError(f"--api-key-env {variable}: the environment variable {variable} is not set or empty")
    return key


def _store_free(store: JobStore) -> bool:
    """True when no other server holds ``store`` (checked before the server starts)."""
    from filelock import Timeout

    lock = store.server_lock()
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    lock.release()
    return True


def _check(args: argparse.Namespace) -> None:
    from imagen_video.cli._options import check_positive, resolve_device

    try:
        for name in ("--max-batch", "--queue-size", "--threads"):
            check_positive(name, getattr(args, name[2:].replace("-", "_")))
        if not 1 <= args.port <= 65535:
            raise ValueError(f"--port must be in 1..65535, got {args.port}")
        if args.batch_wait_ms < 0:
            raise ValueError(f"--batch-wait-ms must be >= 0, got {args.batch_wait_ms:g}")
        args.device = resolve_device(args.device)
    except ValueError as err:
        raise UserError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    """Check the arguments, load the cascades once, then serve until interrupted."""
    _check(args)
    api_key = _api_key(args.api_key_env)
    try:
        import uvicorn

        from imagen_video.serve.app import build_app, default_store_dir, load_cascades
        from imagen_video.serve.store import JobStore
    except ImportError as err:
        raise UserError(f"serve needs the 'serve' extra: pip install 'imagen-video[serve]' ({err})") from None
    import torch

    from imagen_video.cascade.directory import CascadeLoadError

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if api_key is None and not _is_loopback(args.host):
        print(
            f"imagen-video serve: warning: binding {args.host} without --api-key-env: anyone who can reach "
            "this address can use the server",
            file=sys.stderr,
        )
    from imagen_video.cascade.registry import DEFAULT_CASCADE
    from imagen_video.io_safety import check_dir_output

    store_dir = Path(args.store) if args.store else default_store_dir()
    try:
        check_dir_output(store_dir, option="--store")
        store = JobStore(store_dir)
        if not _store_free(store):
            raise ValueError(f"another server is using the store {store_dir}; stop it or use another --store")
        cascades = load_cascades(args.model or [DEFAULT_CASCADE], device=args.device, lora=args.lora)
    except (CascadeLoadError, ValueError, OSError) as err:
        raise UserError(str(err).strip("'\"")) from None
    app = build_app(
        cascades,
        store,
        max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms,
        queue_size=args.queue_size,
        api_key=api_key,
    )
    print(
        f"serving {', '.join(cascades)} at http://{args.host}:{args.port}/ (job API /v1/videos, docs /docs); "
        f"store {store_dir}",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    store.close()
    return 0
