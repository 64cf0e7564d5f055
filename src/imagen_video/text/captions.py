"""Reading the captions of a dataset manifest to encode (the format of
:mod:`imagen_video.data.manifest`).

A plain caption file is a prompt file, read by :func:`imagen_video.prompts.read_prompt_file`.
"""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST_NAME = "manifest.jsonl"


def read_manifest_captions(path: str | Path) -> list[str]:
    """The ``caption`` of every record of a dataset's ``manifest.jsonl`` (a file, or its directory).

    Raises FileNotFoundError when there is no manifest and ValueError naming the line of a record
    that is not JSON or lacks a string ``caption``, or when the manifest is empty.
    """
    path = Path(path)
    manifest = path / MANIFEST_NAME if path.is_dir() else path
    if not manifest.is_file():
        raise FileNotFoundError(
            f"no dataset manifest at {str(manifest)!r}; "
            f"expected a {MANIFEST_NAME} file or a directory holding one"
        )
    captions = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{manifest}:{number}: not a JSON object ({err.msg})") from err
        caption = record.get("caption") if isinstance(record, dict) else None
        if not isinstance(caption, str):
            raise ValueError(f"{manifest}:{number}: record has no string field 'caption'")
        captions.append(caption)
    if not captions:
        raise ValueError(f"dataset manifest {str(manifest)!r} holds no records")
    return captions
