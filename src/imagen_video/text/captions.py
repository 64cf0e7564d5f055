"""Reading captions to encode: a plain caption file, or a dataset in any form ``train`` accepts."""

from __future__ import annotations

from pathlib import Path


def read_caption_file(path: str | Path) -> list[str]:
    """Captions from a UTF-8 text file, one per line; blank lines are skipped, other text kept as is.

    Raises FileNotFoundError for a missing file and ValueError when it holds no caption.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"caption file {str(path)!r} does not exist")
    captions = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not captions:
        raise ValueError(f"caption file {str(path)!r} holds no captions (expected one caption per line)")
    return captions


def read_manifest_captions(path: str | Path, *, skip_uncaptioned: bool = False) -> list[str]:
    """The caption of every record of a dataset, read as training reads it: a ``manifest.jsonl``, its
    directory, or a folder of media with same-named ``.txt`` captions
    (:func:`imagen_video.data.manifest.load_records`; ``skip_uncaptioned`` as there).

    Raises ``DatasetError`` (a ValueError) naming the path and problem for an unusable dataset.
    """
    from imagen_video.data.manifest import load_records

    return [record.caption for record in load_records(path, skip_uncaptioned=skip_uncaptioned)]
