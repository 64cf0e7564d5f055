"""Pieces of `imagen-video serve` without a server: job ids and paths, crash recovery of the store,
request normalization and batch keys, and the command's argument checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("pydantic")

from imagen_video.cascade.presets import tiny_cascade  # noqa: E402
from imagen_video.cli import main  # noqa: E402
from imagen_video.serve import requests  # noqa: E402
from imagen_video.serve.encoder import RecordingEncoder, truncated  # noqa: E402
from imagen_video.serve.store import JobStore, is_job_id, new_job_id  # noqa: E402
from imagen_video.text.base import TextEmbeddings, TextEncoder  # noqa: E402


def test_job_ids_are_random_and_the_only_path_part(tmp_path: Path) -> None:
    ids = {new_job_id() for _ in range(100)}
    assert len(ids) == 100 and all(is_job_id(job_id) for job_id in ids)
    store = JobStore(tmp_path)
    for bad in ("../jobs.sqlite3", "video_" + "0" * 31, "video_" + "g" * 32, "/etc/passwd"):
        assert not is_job_id(bad)
        with pytest.raises(ValueError, match="not a job id"):
            store.job_dir(bad)
    job_id = new_job_id()
    assert store.video_path(job_id, 2, "png") == tmp_path / "videos" / job_id / "video_2_frames.zip"


def test_recover_requeues_in_progress_jobs_and_drops_partial_files(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    request = {"prompt": "p", "num_videos": 1}
    done, running, waiting = (store.add(new_job_id(), request).id for _ in range(3))
    store.start([done, running], 2)
    (store.job_dir(running)).mkdir(parents=True)
    partial = store.job_dir(running) / ".video_0.mp4.abc123.tmp.mp4"
    partial.write_bytes(b"half a file")
    assert store.complete([done, waiting]) == [waiting]  # waiting was never started
    reopened = JobStore(tmp_path)  # as after a crash
    assert reopened.recover() == 1
    assert [job.id for job in reopened.queued()] == [running, waiting]
    assert reopened.get(done).status == "completed" and reopened.get(done).completions == 1
    assert not partial.exists()


def test_normalize_spells_settings_per_stage_and_keys_batches() -> None:
    configs = {"tiny": tiny_cascade()}
    one = requests.normalize(requests.VideoRequest(prompt="a", seed=1, steps=3), configs)
    assert one["steps"] == {"base": 3, "tsr": 3, "ssr": 3} and one["model"] == "tiny"
    two = requests.normalize(
        requests.VideoRequest(prompt="b", seed=2, steps={"base": 3, "tsr": 3, "ssr": 3}), configs
    )
    other = requests.normalize(requests.VideoRequest(prompt="a", seed=1, steps=4), configs)
    assert requests.batch_key(one) == requests.batch_key(two) != requests.batch_key(other)
    drawn = requests.normalize(requests.VideoRequest(prompt="a"), configs)
    assert 0 <= drawn["seed"] < 2**31
    overrides = requests.overrides({**one, "guidance": {"ssr": 2.0}, "sampler": {"tsr": "ddim"}})
    assert overrides["ssr"].guidance.w == 2.0 and overrides["tsr"].sampler == "ddim"
    assert overrides["base"].steps == 3 and overrides["base"].guidance is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "0"], "--port must be in 1..65535, got 0"),
        (["--max-batch", "0"], "--max-batch must be an integer >= 1"),
        (["--batch-wait-ms", "-1"], "--batch-wait-ms must be >= 0"),
        (["--api-key-env", "IMAGEN_VIDEO_TEST_UNSET_KEY"], "IMAGEN_VIDEO_TEST_UNSET_KEY is not set or empty"),
    ],
)
def test_serve_rejects_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err


def test_serve_warns_on_a_public_address_without_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "--host", "0.0.0.0", "--model", str(tmp_path / "none"), "--store", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "warning: binding 0.0.0.0 without --api-key-env" in err and "error:" in err


def test_serve_refuses_a_busy_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with JobStore(tmp_path).server_lock():
        assert main(["serve", "--model", str(tmp_path / "none"), "--store", str(tmp_path)]) == 2
    assert f"another server is using the store {tmp_path}" in capsys.readouterr().err


def test_serve_merges_lora_adapters_into_the_first_model_and_refuses_a_foreign_base() -> None:
    """`serve --lora`: the shipped demo-orange adapter changes the demo's base stage weights at load;
    on another cascade's weights it is refused with the adapter's one-line error."""
    pytest.importorskip("peft")
    from imagen_video.serve.app import load_cascades

    plain = load_cascades(["demo"], device="cpu")["demo"]
    tuned = load_cascades(["demo"], device="cpu", lora=["demo-orange"])["demo"]
    changed = [
        name
        for name, tensor in tuned.models["base"].state_dict().items()
        if not torch.equal(tensor, plain.models["base"].state_dict()[name])
    ]
    assert changed  # merged into the plain network's weights
    assert all(
        torch.equal(a, b)
        for a, b in zip(tuned.models["tsr1"].parameters(), plain.models["tsr1"].parameters(), strict=True)
    )  # tsr1 has no adapter
    with pytest.raises(ValueError, match="was trained on cascade 'demo'"):
        load_cascades(["demo-distilled"], device="cpu", lora=["demo-orange"])


class _WordEncoder(TextEncoder):
    """A stand-in encoder: a prompt of more than 3 words is truncated; it counts its calls."""

    dim, max_length, identity = 2, 3, "words"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(
        self, prompts: list[str], *, batch_size: int = 64, warn_truncation: bool = True
    ) -> TextEmbeddings:
        self.calls.append(list(prompts))
        count = len(prompts)
        flags = [len(prompt.split()) > 3 for prompt in prompts]
        return TextEmbeddings(torch.zeros(count, 3, 2), torch.ones(count, 3, dtype=torch.bool), flags)


def test_recording_encoder_reports_truncation_without_encoding_again(monkeypatch: pytest.MonkeyPatch) -> None:
    inner = _WordEncoder()
    recorder = RecordingEncoder(inner)
    assert (recorder.dim, recorder.max_length, recorder.identity) == (2, 3, "words")
    assert recorder.encode(["a b", "a b c d e"]).truncated == [False, True]
    assert truncated(recorder, ["a b c d e", "a b"]) == [True, False] and len(inner.calls) == 1
    assert truncated(recorder, ["a b", "one two three four"]) == [False, True]
    assert inner.calls[1] == ["one two three four"]  # only the prompt it had not seen
    assert truncated(inner, ["x y z w"]) == [True]  # a plain encoder is asked
    monkeypatch.setattr("imagen_video.serve.encoder.REMEMBERED", 2)
    recorder.encode(["p q r s t"])
    assert truncated(recorder, ["a b"]) == [False] and inner.calls[-1] == ["a b"]  # forgotten, asked again
