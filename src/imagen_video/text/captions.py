"""Reading the captions of a dataset to encode, in any form ``train`` accepts (the formats of
:mod:`imagen_video.data.manifest`).

A plain caption file is a prompt file, read by :func:`imagen_video.prompts.read_prompt_file`.
"""

from __future__ import annotations

from pathlib import Path


def read_manifest_captions(path: str | Path, *, skip_uncaptioned: bool = False) -> list[str]:
    """The caption of every record of a dataset, read as training reads it: a ``manifest.jsonl``, its
    directory, or a folder of media with same-named ``.txt`` captions
    (:func:`imagen_video.data.manifest.load_records`; ``skip_uncaptioned`` as there).

    Raises ``DatasetError`` (a ValueError) naming the path and problem for an unusable dataset.
    """
    from imagen_video.data.manifest import load_records

    return [record.caption for record in load_records(path, skip_uncaptioned=skip_uncaptioned)]
