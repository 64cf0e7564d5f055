"""Benchmarks of the networks at the paper's scale: stage measurements, FLOPs, MFU and a memory model.

``imagen_video.bench.stage`` measures one cascade stage (``imagen-video bench stage``),
``imagen_video.bench.memory`` predicts its memory, ``imagen_video.bench.devices`` holds the dense bf16
peaks of known accelerators and ``imagen_video.bench.cascade`` sums whole-cascade time and FLOPs.
"""
