"""``benchmarks/generate_speed.py`` reads ``generate``'s own timing line: the two must agree on its format."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch

from imagen_video.cascade import CascadeOutput
from imagen_video.cli._outputs import timing_report

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "generate_speed.py"


def test_parse_timing_reads_the_report_of_generate() -> None:
    parse_timing = runpy.run_path(str(SCRIPT))["parse_timing"]
    output = CascadeOutput(torch.zeros(1, 3, 2, 4, 4), 8.0, {"base": 0.21, "tsr1": 1.04}, 0.33, ["p"])
    stdout = f"wrote v.mp4\n{timing_report(output, 2.5)}\n32 frames of 48x80 at 8 fps; seed 0\n"
    seconds = parse_timing(stdout)
    seconds.pop("process", None)  # the test process's age, when the platform reports it
    assert seconds == pytest.approx({"text": 0.33, "base": 0.21, "tsr1": 1.04, "total": 2.5})
    with pytest.raises(ValueError, match="no timings line"):
        parse_timing("wrote v.mp4\n")
