"""Run a peer benchmark script on one thread, timing with process CPU time instead of the wall clock.

Used by compare_peers.py --clock cpu, so that ours and the peers are timed alike on a machine shared
with other work (the peer scripts call time.perf_counter; it is pointed at time.process_time).

    $PEER_VENV/bin/python benchmarks/peer_cpu_clock.py benchmarks/peers/unet3d_diffusers.py [FLAGS]
"""

import runpy
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)
time.perf_counter = time.process_time
script = sys.argv[1]
sys.argv = sys.argv[1:]  # the peer script parses its own flags
sys.path.insert(0, str(Path(script).resolve().parent))  # its shared helpers (peers/common.py)
runpy.run_path(script, run_name="__main__")
