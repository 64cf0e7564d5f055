"""Every metric as a per-video feature step plus a compute step: features extracted in the feature
batches of any share of the ranks concatenate to the bit-identical features of one process, and the
sharded evaluation driver gives one process's report (docs/scale.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagen_video.cascade import sharded as cascade_sharded
from imagen_video.cascade.sharded import Shard
from imagen_video.cli import main
from imagen_video.metrics import MetricsConfig, build_metrics
from imagen_video.metrics.base import FeatureMetric, concat_features
from imagen_video.metrics.evaluate import RunSource, evaluate_runs
from imagen_video.metrics.sharded import can_shard, evaluate_sharded, rank_chunks
from imagen_video.metrics.videos import load_video_dir, save_video_npz
from imagen_video.world.metric import register_world_metric
from imagen_video.world.render import render_batch
from imagen_video.world.spec import parse_caption
from tiny_metric_networks import save_tiny_clip, save_tiny_i3d, save_tiny_i3d_state_dict, save_tiny_inception

PROMPTS = [
    "a red circle moving left",
    "a blue square growing",
    "a green triangle moving up",
    "a red square shrinking",
    "a blue circle moving down",
]
BATCH = 2


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, MetricsConfig]:
    root = tmp_path_factory.mktemp("features")
    register_world_metric()
    common = {"batch_size": BATCH, "num_distractors": 3}
    return {
        "fid": MetricsConfig(
            metrics=("fid",), inception_weights=str(save_tiny_inception(root / "inc.pt")), **common
        ),
        "fvd": MetricsConfig(metrics=("fvd",), i3d_weights=str(save_tiny_i3d(root / "i3d.pt")), **common),
        "fvd-pool": MetricsConfig(
            metrics=("fvd",),
            i3d_weights=str(save_tiny_i3d_state_dict(root / "i3d.safetensors")),
            i3d_features="pool",
            **common,
        ),
        "clip": MetricsConfig(
            metrics=("clip", "rprec"),
            clip_model=str(save_tiny_clip(root / "clip", " ".join(PROMPTS).split())),
            **common,
        ),
        "world": MetricsConfig(metrics=("world",), **common),
    }


def _videos(prompts: list[str], seed: int) -> torch.Tensor:
    """World clips (N, 3, 9, 24, 40) in [0, 1], uint8-exact (as read back from files)."""
    clips = render_batch([parse_caption(p) for p in prompts], frames=9, height=24, width=40, seed=seed)
    return torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float() / 255


@pytest.mark.parametrize("name", ["fid", "fvd", "fvd-pool", "clip", "world"])
@pytest.mark.parametrize("ranks", [2, 3])
def test_sharded_features_are_bit_identical_and_compute_equals(configs, name: str, ranks: int) -> None:
    (metric,) = build_metrics(configs[name])
    assert isinstance(metric, FeatureMetric)
    videos, reference = _videos(PROMPTS, 0), _videos(PROMPTS[:4], 1)
    whole = metric.features(videos, PROMPTS)
    assert all(value.shape[0] == len(PROMPTS) for value in whole.values())
    parts = [
        metric.features(videos[start:stop], PROMPTS[start:stop])
        for rank in range(ranks)
        for _, start, stop in rank_chunks([len(PROMPTS)], BATCH, rank, ranks)
    ]
    joined = concat_features(parts)
    assert joined.keys() == whole.keys() and all(torch.equal(joined[k], whole[k]) for k in whole)
    ref = metric.features(reference, None, "reference")
    expected = metric.compute(videos, PROMPTS, reference)
    result = metric.compute_from_features(joined, PROMPTS, ref)
    assert result.values == expected.values and result.details == expected.details
    assert all(np.isfinite(v) for v in result.values.values())


def test_features_keep_the_metric_errors(configs) -> None:
    (fvd,) = build_metrics(configs["fvd"])
    with pytest.raises(ValueError, match="at least 9 frames per clip, but the reference clips have 8"):
        fvd.features(_videos(PROMPTS[:2], 0)[:, :, :8], None, "reference")
    one = fvd.features(_videos(PROMPTS[:1], 0), PROMPTS[:1])  # a shard of one video is fine ...
    with pytest.raises(ValueError, match="videos needs at least 2 videos"):  # ... a whole set of one is not
        fvd.compute_from_features(one, PROMPTS[:1], one)
    (world,) = build_metrics(configs["world"])
    with pytest.raises(ValueError, match="need one prompt per clip"):
        world.compute_from_features(world.features(_videos(PROMPTS[:2], 0), None), PROMPTS[:3], None)


@pytest.mark.parametrize(("sizes", "batch"), [([5], 2), ([3, 3, 7], 3), ([1], 4), ([8, 2], 2)])
@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_rank_chunks_share_every_batch_once_in_order(sizes: list[int], batch: int, world_size: int) -> None:
    shares = [rank_chunks(sizes, batch, rank, world_size) for rank in range(world_size)]
    flat = [chunk for share in shares for chunk in share]
    expected = [(k, s, min(s + batch, n)) for k, n in enumerate(sizes) for s in range(0, n, batch)]
    assert flat == expected
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def _write_run(directory, videos: torch.Tensor) -> RunSource:
    for i, video in enumerate(videos):
        save_video_npz(directory / f"{i:03d}.npz", video, fps=8.0)
    return RunSource(directory.name, directory, {"videos": str(directory)})


def test_two_ranks_in_process_give_the_one_process_report(configs, tmp_path, monkeypatch) -> None:
    """Rank 1's features reach rank 0 through a stand-in for gather_object; the report is one process's."""
    config = MetricsConfig(
        metrics=("fid", "fvd", "clip", "rprec", "world"),
        inception_weights=configs["fid"].inception_weights,
        i3d_weights=configs["fvd"].i3d_weights,
        clip_model=configs["clip"].clip_model,
        batch_size=BATCH,
        num_distractors=3,
    )
    metrics = build_metrics(config)
    assert can_shard(metrics)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "ref").mkdir()
    runs = [_write_run(tmp_path / "a", _videos(PROMPTS, 2)), _write_run(tmp_path / "b", _videos(PROMPTS, 3))]
    _write_run(tmp_path / "ref", _videos(PROMPTS, 4))
    sent: list[object] = []
    monkeypatch.setattr(cascade_sharded, "gather_to_main", lambda value, shard: sent.append(value))
    assert evaluate_sharded(runs, PROMPTS, config, metrics, Shard(1, 2, 1, torch.device("cpu")),
                            reference=tmp_path / "ref", progress=False) is None  # fmt: skip
    monkeypatch.setattr(cascade_sharded, "gather_to_main", lambda value, shard: [value, *sent])
    report = evaluate_sharded(
        runs, PROMPTS, config, metrics, Shard(0, 2, 0, torch.device("cpu")), reference=tmp_path / "ref",
        progress=False,
    )  # fmt: skip
    single = evaluate_runs(
        [run.load(len(PROMPTS)) for run in runs],
        PROMPTS,
        config,
        reference=load_video_dir(tmp_path / "ref"),
        metrics=build_metrics(config),
        progress=False,
    )
    assert report == single
    assert report["ground_truth"] is not None and set(report["runs"][0]["values"]) >= {
        "fid",
        "fvd",
        "world_fd",
    }


def test_a_set_whose_feature_batches_differ_in_shape_is_refused(configs, tmp_path) -> None:
    (tmp_path / "a").mkdir()
    run = _write_run(tmp_path / "a", _videos(PROMPTS[:2], 0))
    save_video_npz(tmp_path / "a" / "002.npz", _videos(PROMPTS[2:3], 0)[0, :, :8], fps=8.0)
    metrics = build_metrics(configs["clip"])
    with pytest.raises(
        ValueError, match=r"differ in shape \(C, T, H, W\): \[\(3, 8, 24, 40\), \(3, 9, 24, 40\)\]"
    ):
        evaluate_sharded(
            [run], PROMPTS[:3], configs["clip"], metrics, Shard(0, 1, 0, torch.device("cpu")), progress=False
        )


def test_cli_asks_for_the_reference_before_any_model_loads(configs, tmp_path, capsys) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    code = main([
        "evaluate", "--prompts", str(prompts), "--model", str(tmp_path / "no-such-cascade"),
        "--metrics", "fvd", "--i3d-weights", configs["fvd"].i3d_weights,
        "--out", str(tmp_path / "out"), "--quiet",
    ])  # fmt: skip
    assert code == 2 and "['fvd'] need a reference video set" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
