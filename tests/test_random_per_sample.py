"""One generator per sample: each row's noise comes from its own generator, so a video sampled in a
batch equals the video sampled alone with the same generator (what lets a server batch requests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from imagen_video.cascade.presets import tiny_cascade
from imagen_video.cascade.runner import Cascade, CascadeStep
from imagen_video.diffusion import _random
from test_cascade_helpers import HashTextEncoder, single_thread


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    yield from single_thread()


def _generators(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def test_each_row_is_drawn_from_its_own_generator() -> None:
    for draw, reference in ((_random.randn, torch.randn), (_random.rand, torch.rand)):
        rows = draw((3, 2, 5), generator=_generators(4, 9, 4), device="cpu")
        assert rows.shape == (3, 2, 5)
        for row, seed in zip(rows, (4, 9, 4), strict=True):
            assert torch.equal(row, reference((2, 5), generator=torch.Generator().manual_seed(seed)))
    scalars = _random.rand((2,), generator=_generators(1, 2), device="cpu")
    assert scalars.shape == (2,) and scalars[0] != scalars[1]
    with pytest.raises(ValueError, match="2 per-sample generators for a draw of shape \\(3, 4\\)"):
        _random.randn((3, 4), generator=_generators(1, 2), device="cpu")


def test_a_video_is_the_same_alone_and_in_a_batch() -> None:
    cascade = Cascade.from_config(
        tiny_cascade(), generator=torch.Generator().manual_seed(0), text_encoder=HashTextEncoder()
    )
    prompt = "a red circle moving right"
    alone = cascade.generate([prompt], generator=_generators(5), progress=False).video
    steps: list[CascadeStep] = []
    prompts = ["a blue square", prompt, prompt]
    generators = _generators(8, 5, 6)
    batch = cascade.generate(prompts, generator=generators, callback=steps.append, progress=False).video
    assert torch.allclose(alone[0], batch[1], atol=1e-5)  # equal up to float rounding of batched forwards
    assert (batch[1] - batch[2]).abs().max() > 0.05  # same prompt, other seed: another video
    last = steps[-1]
    assert last.step == last.steps - 1 and last.x_hat is not None
    assert torch.equal(((last.x_hat.clamp(-1, 1) + 1) / 2).clamp(0, 1), batch)
