"""The work sharing of :mod:`imagen_video.cascade.sharded` on an in-process store: claims, the job's
progress count, the stall watchdog and the rank's device (the real torchrun runs are in
test_generate_torchrun.py)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from imagen_video.cascade.sharded import JobProgress, Shard, from_main, resolve_rank_device
from imagen_video.device import auto_device


def _ranks(world: int, timeout_s: float = 60.0) -> list[Shard]:
    store = dist.HashStore()
    return [Shard(rank, world, rank, torch.device("cpu"), store, timeout_s) for rank in range(world)]


def test_claims_interleave_without_repeats_and_cover_every_batch() -> None:
    first, second = (w.claim(7) for w in _ranks(2))
    taken = {0: [next(first)], 1: [next(second), next(second), next(second)]}  # rank 1 is faster
    taken[0] += list(first)
    taken[1] += list(second)
    assert taken == {0: [0, 4, 5, 6], 1: [1, 2, 3]}


def test_one_process_takes_every_batch_in_order() -> None:
    alone = Shard(0, 1, 0, torch.device("cpu"))
    assert list(alone.claim(3)) == [0, 1, 2] and not alone.distributed and alone.is_main
    assert from_main({"seed": 4}, alone) == {"seed": 4}


def test_progress_counts_every_rank_from_the_store(capsys: pytest.CaptureFixture[str]) -> None:
    main, other = _ranks(2)
    bar = JobProgress(main, total=10, done=3, enabled=True)
    JobProgress(other, total=10, done=3, enabled=True).finished_batch(2)
    bar.finished_batch(4)
    assert bar.made == 6
    bar.bar.close()
    shown = capsys.readouterr().err
    assert "9/10 videos" in shown and "videos/min, ETA" in shown and "5/10" not in shown  # rank 1 is silent


def test_rank_0_names_the_ranks_that_stall() -> None:
    main, _ = _ranks(2, timeout_s=0.3)
    with pytest.raises(RuntimeError, match=r"rank\(s\) \[1\] made no progress for 0.3 s"):
        JobProgress(main, total=4, done=0, enabled=False).wait_for_all(poll_s=0.05)


def test_each_rank_takes_its_own_gpu() -> None:
    assert resolve_rank_device("cuda", 3) == torch.device("cuda", 3)
    assert resolve_rank_device("cuda:1", 3) == torch.device("cuda", 1)
    assert resolve_rank_device("cpu", 3) == torch.device("cpu")
    expected = torch.device("cuda", 2) if torch.cuda.is_available() else auto_device()
    assert resolve_rank_device("auto", 2) == expected
