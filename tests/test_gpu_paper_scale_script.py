"""scripts/gpu_paper_scale.sh in its CPU smoke mode: every measurement file, well formed, no errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagen_video.bench.cascade import cascade_totals

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_paper_scale.sh"


@pytest.mark.slow
def test_smoke_mode_writes_every_measurement(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PAPER_SCALE_SMOKE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHON": sys.executable,
        "IV": str(Path(sys.executable).with_name("imagen-video")),
        "PEER_VENV": str(tmp_path / "no-peers"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=900, cwd=SCRIPT.parents[1])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "peers: skipped" in done.stderr
    results = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    expected = {"base_train", "base_train_fsdp", "sample_base", "sample_tsr", "sample_ssr", "cascade"}
    assert set(results) == expected
    assert not [name for name, r in results.items() if "error" in r]
    assert results["base_train"]["batch"] == 2 and results["base_train"]["settings"]["checkpointing"]
    assert results["base_train_fsdp"]["settings"]["fsdp"]
    assert results["sample_ssr"]["settings"]["tile"] == [8, 8]
    totals = results["cascade"]
    assert totals["original_flops"] == cascade_totals("tiny")["original_flops"]
    step_s = {s: results[f"sample_{s}"] for s in ("base", "tsr", "ssr")}
    assert totals["distilled_s"] == pytest.approx(8 * sum(r["single_step_s"] for r in step_s.values()))
    assert not list(tmp_path.glob("*.err"))  # stderr is kept only for failed measurements
