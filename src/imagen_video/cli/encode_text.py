"""`imagen-video encode-text`: precompute prompt embeddings into an on-disk cache (paper sec. 2.2).

Training reads the cache instead of running the frozen text encoder at every step.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from imagen_video.cli import UserError
from imagen_video.cli._types import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``encode-text`` subcommand."""
    parser = subparsers.add_parser(
        "encode-text",
        help="precompute text embeddings for captions into an embedding cache",
        description=(
            "Encode captions with a frozen text encoder and store the token embeddings in DIR "
            "(safetensors shards + index.json). Only captions not yet in the cache are encoded; "
            "a cache built by another encoder is refused."
        ),
    )
    parser.add_argument(
        "--encoder",
        default="embedded",
        help="'embedded' (offline MiniLM, default), 't5:<hub-name-or-dir>' or a local T5 directory",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="cache directory")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--captions", type=Path, metavar="FILE", help="text file, one caption per line")
    source.add_argument(
        "--data",
        type=Path,
        metavar="DATA",
        help="dataset as train takes it: manifest.jsonl, its directory, or a folder of captioned media",
    )
    parser.add_argument(
        "--skip-uncaptioned", action="store_true", help="with --data: leave media without a caption out"
    )
    parser.add_argument("--max-length", type=positive_int, default=None, help="token length L (default 64)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="prompts per forward pass")
    parser.add_argument("--device", default="cpu", help="torch device for the encoder (default cpu)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default=None, help="compute dtype")
    parser.add_argument(
        "--storage-dtype",
        choices=["float32", "float16"],
        default=None,
        help="dtype of stored tokens (default float32, or the existing cache's)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read captions, load the encoder, extend the cache and print what was done."""
    from imagen_video.prompts import read_prompt_file
    from imagen_video.text import (
        EmbeddingCache,
        TextEncoderUnavailable,
        load_text_encoder,
        read_manifest_captions,
    )

    try:
        if args.captions is not None:
            captions = [prompt for _, prompt in read_prompt_file(args.captions)]
        else:
            captions = read_manifest_captions(args.data, skip_uncaptioned=args.skip_uncaptioned)
        encoder = load_text_encoder(
            args.encoder, max_length=args.max_length, device=args.device, dtype=args.dtype
        )
        cache = EmbeddingCache.build(
            args.out,
            encoder,
            captions,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            storage_dtype=args.storage_dtype,
        )
    except (OSError, ValueError, TextEncoderUnavailable) as err:
        raise UserError(str(err)) from err
    stats = cache.build_stats
    print(
        f"encoded {stats.encoded}, already cached {stats.cached}, truncated {stats.truncated} "
        f"(max_length {encoder.max_length}) of {stats.unique} distinct caption(s); "
        f"cache {args.out} holds {len(cache)} caption(s) for encoder {cache.identity}"
    )
    return 0
