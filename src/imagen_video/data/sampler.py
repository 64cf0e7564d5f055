"""Joint image-video sampling with a configurable image fraction (paper sec. 2.6).

"We follow Ho et al. (2022b) in jointly training all the models in the Imagen Video pipeline on
images and videos" (paper sec. 2.6). :class:`JointImageVideoSampler` yields :class:`SampleKey` s of a
:class:`VideoTextDataset` so that a fraction ``image_fraction`` of each epoch's samples are packed
images and the rest video clips; batches mix both (``image_mode`` is per sample).

Each epoch's order is a function of ``(seed, epoch)`` only and is sharded across ranks, and each key
carries its epoch and slot (its position in the epoch), which seed the sample's augmentation. A run
therefore resumes exactly from ``(epoch, samples consumed on this rank)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from imagen_video.data.dataset import SampleKey, VideoTextDataset

__all__ = ["JointImageVideoSampler"]


class JointImageVideoSampler(Sampler[SampleKey]):
    """Per-rank stream of ``SampleKey`` s mixing images (fraction ``image_fraction``) and videos.

    Per epoch: ``num_samples`` slots (default ``len(dataset)``, cut to a multiple of ``world_size``);
    ``round(image_fraction * num_samples)`` random slots are images, the others videos. Each kind's
    slots take its records in a fresh random permutation, starting another permutation when one runs
    out (so a record repeats only after all others of its kind were used). Rank r takes slots
    ``r, r + world_size, ...``; :meth:`set_epoch` chooses the epoch and how many of this rank's
    samples to skip (the data position of a resumed run).
    """

    def __init__(
        self,
        dataset: VideoTextDataset,
        *,
        image_fraction: float,
        seed: int = 0,
        num_samples: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0.0 <= image_fraction <= 1.0:
            raise ValueError(f"image_fraction={image_fraction} must be in [0, 1]")
        if image_fraction > 0 and not dataset.image_indices:
            why = "" if dataset.spec.use_images else " (the stage spec has use_images=False)"
            raise ValueError(f"image_fraction={image_fraction} but the dataset holds no image records{why}")
        if image_fraction < 1 and not dataset.video_indices:
            raise ValueError(f"image_fraction={image_fraction} but the dataset holds no video records")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
        total = len(dataset) if num_samples is None else num_samples
        self.num_samples = total - total % world_size
        if self.num_samples < 1:
            raise ValueError(f"num_samples={total} gives no samples for world_size={world_size}")
        self.video_indices = np.asarray(dataset.video_indices, dtype=np.int64)
        self.image_indices = np.asarray(dataset.image_indices, dtype=np.int64)
        self.image_fraction = float(image_fraction)
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate ``epoch`` next, skipping the first ``start`` samples of this rank (resumption)."""
        if not 0 <= start <= len(self._rank_slots()):
            raise ValueError(f"start={start} must be in [0, {len(self._rank_slots())}]")
        self.epoch, self.start = int(epoch), int(start)

    def epoch_order(self, epoch: int) -> list[SampleKey]:
        """All ``num_samples`` keys of ``epoch`` in order (identical on every rank)."""
        rng = np.random.default_rng([self.seed, epoch])
        num_images = round(self.image_fraction * self.num_samples)
        is_image = np.zeros(self.num_samples, dtype=bool)
        is_image[rng.permutation(self.num_samples)[:num_images]] = True
        records = np.empty(self.num_samples, dtype=np.int64)
        records[~is_image] = _cycled_permutations(self.video_indices, self.num_samples - num_images, rng)
        records[is_image] = _cycled_permutations(self.image_indices, num_images, rng)
        return [SampleKey(int(r), epoch, slot) for slot, r in enumerate(records)]

    def _rank_slots(self) -> range:
        return range(self.rank, self.num_samples, self.world_size)

    def __iter__(self) -> Iterator[SampleKey]:
        order = self.epoch_order(self.epoch)
        for slot in self._rank_slots()[self.start :]:
            yield order[slot]

    def __len__(self) -> int:
        return len(self._rank_slots()) - self.start


def _cycled_permutations(pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` items of ``pool``: concatenated fresh permutations, cut to length."""
    if count == 0:
        return np.empty(0, dtype=np.int64)
    rounds = -(-count // len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(rounds)])[:count]
