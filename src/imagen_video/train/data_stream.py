"""The training data stream of one rank: micro-batches of a stage's dataset, resumable at any step.

Wraps ``imagen_video.data`` (:class:`VideoTextDataset`, :class:`JointImageVideoSampler`) into an
endless sequence of micro-batches. Each epoch's order depends only on (seed, epoch) and is sharded
across ranks; a sample's augmentation depends only on its (epoch, slot, record). The data position
of a run is therefore one integer, the number of micro-batches consumed per rank, which checkpoints
store and a resumed run starts from (no sample is repeated or lost across a resume).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from imagen_video.cascade.config import StageConfig
from imagen_video.data import (
    DatasetError,
    JointImageVideoSampler,
    SampleKey,
    StageDataSpec,
    VideoTextDataset,
    collate_video_text,
)


@dataclass(frozen=True)
class DataPosition:
    """Where a rank is in the data: ``micro_batches = epoch * per_epoch + batch_in_epoch``."""

    epoch: int
    batch_in_epoch: int
    micro_batches: int


def image_fraction_for(dataset: VideoTextDataset, requested: float | None) -> float:
    """Share of packed-image samples (paper sec. 2.6): ``requested``, or the dataset's own image share.

    Stages that do not train on images (``use_images`` False, e.g. TSR) always get 0.
    """
    if not dataset.spec.use_images:
        return 0.0
    return len(dataset.image_indices) / len(dataset) if requested is None else requested


class BatchStream:
    """Endless per-rank batches of ``SampleKey`` s, starting ``start_micro_batches`` into the stream."""

    def __init__(
        self, sampler: JointImageVideoSampler, batch_size: int, start_micro_batches: int = 0
    ) -> None:
        self.sampler = sampler
        self.batch_size = batch_size
        self.start = start_micro_batches
        self.per_epoch = (sampler.num_samples // sampler.world_size) // batch_size
        if self.per_epoch < 1:
            raise DatasetError(
                f"the dataset gives {sampler.num_samples // sampler.world_size} sample(s) per rank and "
                f"epoch, fewer than one micro-batch of batch_size={batch_size}; lower --batch-size"
            )

    def position(self, micro_batches: int) -> DataPosition:
        """The data position after ``micro_batches`` consumed micro-batches."""
        return DataPosition(micro_batches // self.per_epoch, micro_batches % self.per_epoch, micro_batches)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        position = self.position(self.start)
        epoch, offset = position.epoch, position.batch_in_epoch
        while True:
            self.sampler.set_epoch(epoch, offset * self.batch_size)
            keys = iter(self.sampler)
            for _ in range(self.per_epoch - offset):
                yield [next(keys) for _ in range(self.batch_size)]
            epoch, offset = epoch + 1, 0


def open_dataset(
    data_path: str | Path, stage_cfg: StageConfig, *, seed: int, skip_uncaptioned: bool = False
) -> VideoTextDataset:
    """The stage's dataset (raises ``DatasetError`` at once for a missing path, an empty dataset,
    a caption without media, or a stage that finds no usable records). ``skip_uncaptioned``: leave
    media without a caption out instead."""
    spec = StageDataSpec.from_stage(stage_cfg)
    return VideoTextDataset(data_path, spec, seed=seed, skip_uncaptioned=skip_uncaptioned)


def make_loader(
    dataset: VideoTextDataset,
    *,
    batch_size: int,
    image_fraction: float | None,
    seed: int,
    rank: int,
    world_size: int,
    start_micro_batches: int,
    num_workers: int,
) -> tuple[DataLoader, BatchStream]:
    """A DataLoader over the endless :class:`BatchStream` of this rank, and the stream (for positions)."""
    sampler = JointImageVideoSampler(
        dataset,
        image_fraction=image_fraction_for(dataset, image_fraction),
        seed=seed,
        rank=rank,
        world_size=world_size,
    )
    stream = BatchStream(sampler, batch_size, start_micro_batches)
    loader = DataLoader(
        dataset,
        batch_sampler=stream,
        collate_fn=collate_video_text,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),  # worker seeds; the global RNG stays untouched
        worker_init_fn=ignore_stop_signals if num_workers > 0 else None,
    )
    return loader, stream


def ignore_stop_signals(_worker_id: int) -> None:
    """DataLoader worker init: ignore SIGINT and SIGTERM.

    A stop signal sent to the whole process group (Ctrl-C, Slurm, ``kill -- -PGID``, ``pkill -f``)
    must not kill the workers first: the main process would then die with "DataLoader worker killed"
    instead of writing its stop checkpoint. Workers still exit when the loader shuts them down or the
    main process dies.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
