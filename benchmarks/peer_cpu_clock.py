"""Run a peer benchmark script on one thread, timing with process CPU time instead of the wall clock.

Used by compare_peers.py --clock cpu, so that ours and the peers are timed alike on a machine shared
with other work (the peer scripts call time.perf_counter; it is pointed at time.process_time).

    $PEER_VENV/bin/python benchmarks/peer_cpu_clock.py $PEER_DIR/peer_diffusers.py
"""

import runpy
import sys
import time

import torch

torch.set_num_threads(1)
time.perf_counter = time.process_time
runpy.run_path(sys.argv[1], run_name="__main__")
