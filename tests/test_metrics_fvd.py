"""FVD: the I3D architecture, loading feature networks from local files, preprocessing, the distance."""

from __future__ import annotations

import math

import pytest
import torch

from imagen_video.metrics import MetricsConfig, build_metrics, frechet_distance, load_feature_network
from imagen_video.metrics.fvd import FVD, preprocess_clips
from imagen_video.metrics.i3d import InceptionI3d, Unit3D
from imagen_video.metrics.networks import resize_bilinear_tf1
from tiny_metric_networks import TinyI3D, save_tiny_i3d, save_tiny_i3d_state_dict


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("fvd")
    return {
        "script": save_tiny_i3d(root / "i3d_torchscript.pt"),
        "state": save_tiny_i3d_state_dict(root / "i3d.safetensors", width_divisor=64),
        "root": root,
    }


def _videos(n: int, t: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, t, 12, 16, generator=g) * scale).clamp(0, 1)  # (N, C, T, H, W)


def test_full_width_i3d_has_the_reference_shapes() -> None:
    """Channel widths of Carreira & Zisserman's I3D, under piergiaj/pytorch-i3d's parameter names."""
    state = InceptionI3d().state_dict()
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert state["Mixed_4b.b0.conv3d.weight"].shape == (192, 480, 1, 1, 1)
    assert state["Mixed_5b.b0.conv3d.weight"].shape == (256, 832, 1, 1, 1)
    assert state["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert "Mixed_5c.b3b.bn.running_var" in state and "logits.conv3d.bias" in state
    assert len(state) == 57 * 6 + 2  # 57 conv+BN units (6 tensors each) + the logits conv and bias


@pytest.mark.parametrize(
    ("size", "kernel", "stride"), [(9, 7, 2), (10, 7, 2), (224, 7, 2), (5, 3, 1), (7, 2, 2)]
)
def test_same_padding_gives_tensorflow_output_sizes(size: int, kernel: int, stride: int) -> None:
    unit = Unit3D(1, 1, (kernel, 1, 1), (stride, 1, 1))
    assert unit(torch.zeros(1, 1, size, 1, 1)).shape[2] == math.ceil(size / stride)


def test_i3d_needs_nine_frames_and_logits_are_linear_in_pool(files: dict) -> None:
    net = load_feature_network(files["state"]).module
    assert isinstance(net, InceptionI3d) and net.min_frames == 9
    clip = torch.rand(1, 3, 9, 224, 224, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        pool, logits = net(clip, "pool"), net(clip, "logits")
        with pytest.raises(RuntimeError):  # 8 frames leave one time step for the (2, 7, 7) average pool
            net(clip[:, :, :8])
    assert pool.shape == (1, net.feature_dim) and logits.shape == (1, 400)
    weight, bias = net.logits.conv3d.weight.flatten(1), net.logits.conv3d.bias
    torch.testing.assert_close(logits, pool @ weight.T + bias, rtol=1e-5, atol=1e-5)


def test_state_dict_formats_round_trip(files: dict) -> None:
    original = InceptionI3d(width_divisor=64)
    original.load_state_dict(load_feature_network(files["state"]).module.state_dict())
    pt = files["root"] / "rgb_imagenet.pt"
    torch.save(original.state_dict(), pt)  # the piergiaj / VideoGPT format
    for path in (files["state"], pt):
        net = load_feature_network(path)
        assert (net.format, net.architecture, net.call_kwargs) == ("state_dict", "inception_i3d", {})
        assert len(net.sha256) == 64
        for key, value in original.state_dict().items():
            torch.testing.assert_close(net.module.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_conventions_are_read_from_the_signature(files: dict, tmp_path) -> None:
    net = load_feature_network(files["script"])
    assert net.call_kwargs == {"rescale": False, "resize": False, "return_features": True}
    assert net.convention == "stylegan" and net.module.min_frames == 9
    x = preprocess_clips(_videos(2, 9, 0))
    assert net(x).shape == (2, 16)  # features, not the 400 class logits
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Flatten(1)), plain)
    loaded = load_feature_network(plain)
    assert (loaded.call_kwargs, loaded.convention) == ({}, "plain")


def test_missing_and_unsupported_weight_files_fail_clearly(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_feature_network(tmp_path / "nowhere.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="neither TorchScript nor"):
        load_feature_network(junk)
    other = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="no supported architecture"):
        load_feature_network(other)
    broken = InceptionI3d(width_divisor=64).state_dict()
    del broken["Mixed_3b.b0.conv3d.weight"]
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="does not fit InceptionI3d.*Mixed_3b.b0.conv3d.weight"):
        load_feature_network(tmp_path / "broken.pt")


def test_tf1_bilinear_resize_pinned() -> None:
    ramp = torch.tensor([0.0, 10.0, 20.0, 30.0]).view(1, 1, 1, 4)
    assert resize_bilinear_tf1(ramp, (1, 8)).flatten().tolist() == [0, 5, 10, 15, 20, 25, 30, 30]
    assert resize_bilinear_tf1(ramp, (1, 2)).flatten().tolist() == [0, 20]
    x = torch.rand(2, 3, 5, 7)
    torch.testing.assert_close(resize_bilinear_tf1(x, (5, 7)), x)


def test_preprocess_maps_unit_range_to_symmetric_224() -> None:
    videos = torch.stack([torch.full((3, 9, 12, 16), 0.5), torch.ones(3, 9, 12, 16)])
    clips = preprocess_clips(videos)
    assert clips.shape == (2, 3, 9, 224, 224)
    assert clips[0].abs().max() == 0 and (clips[1] == 1).all()


def test_fvd_properties_with_torchscript_i3d(files: dict) -> None:
    fvd = FVD(load_feature_network(files["script"]), batch_size=2)
    gen, ref = _videos(4, 9, 1), _videos(4, 9, 2, scale=0.3)
    same = fvd.compute(gen, [""] * 4, gen)
    assert same.values["fvd"] == pytest.approx(0.0, abs=1e-6)
    result = fvd.compute(gen, [""] * 4, ref)
    assert result.values["fvd"] == pytest.approx(
        frechet_distance(fvd.clip_features(gen), fvd.clip_features(ref)), rel=1e-12
    )
    assert result.values["fvd"] > 0
    d = result.details
    assert (d["frames"], d["input"], d["generated_videos"], d["reference_videos"]) == (9, "9x224x224", 4, 4)
    assert d["network"]["weights"] == "i3d_torchscript.pt" and len(d["network"]["sha256"]) == 64


def test_fvd_frame_checks(files: dict) -> None:
    network = load_feature_network(files["script"])
    with pytest.raises(ValueError, match="at least 9 frames per clip, but the videos clips have 8"):
        FVD(network).compute(_videos(3, 8, 0), [""] * 3, _videos(3, 16, 1))
    with pytest.raises(ValueError, match="--fvd-frames 12 exceeds the 10 frames"):
        FVD(network, num_frames=12).compute(_videos(3, 10, 0), [""] * 3, _videos(3, 16, 1))
    with pytest.raises(ValueError, match="at least 2 videos"):
        FVD(network).compute(_videos(1, 9, 0), [""], _videos(3, 9, 1))
    with pytest.raises(ValueError, match="needs an InceptionI3d state dict"):
        FVD(network, layer="pool")
    first = FVD(network, num_frames=9).compute(_videos(3, 12, 0), [""] * 3, _videos(3, 9, 1))
    assert first.details["frames"] == 9


def test_fvd_from_state_dict_matches_direct_features(files: dict) -> None:
    config = MetricsConfig(
        metrics=("fvd",), i3d_weights=str(files["state"]), i3d_features="pool", batch_size=2
    )
    (fvd,) = build_metrics(config)
    gen, ref = _videos(2, 9, 3), _videos(2, 9, 4, scale=0.5)
    value = fvd.compute(gen, ["a", "b"], ref).values["fvd"]
    with torch.no_grad():
        net = fvd.network.module
        direct = [net(preprocess_clips(v), "pool").double().numpy() for v in (gen, ref)]
    assert value == pytest.approx(frechet_distance(*direct), rel=1e-9)
    assert direct[0].shape == (2, net.feature_dim)


def test_tiny_i3d_module_is_the_stylegan_v_convention() -> None:
    net = TinyI3D()
    x = torch.rand(1, 3, 9, 32, 32) * 255
    assert net(x, rescale=True, resize=True).shape == (1, 400)
    assert net(x, rescale=True, resize=True, return_features=True).shape == (1, 16)
