"""Training throughput, FLOPs per image, fraction of dense-conv peak, peak memory.

    python benchmarks/throughput.py [--presets celeba-10 mtfl-cpu mnist-cpu] [--steps 5] [--device auto] [--profile]
                                    [--set section.key=value ...]

For each preset: one training step's FLOPs per image (forward + backward of
Eq. 15, counted by torch.utils.flop_counter), training images/s on random
images, and that speed as a fraction of this machine's dense-convolution
throughput, measured in the same run (a 64-channel 3x3 convolution forward +
backward at the preset's padded size). Peak memory: CUDA allocator peak, or
the process's maximum resident set on CPU. ``--profile`` (CPU only) adds the share of
the step's self time spent in convolutions (forward and backward) and the
five costliest operators, from torch.profiler over ``--steps`` steps.
``--set`` changes a setting of every listed preset (e.g.
``train.recon_batch_size=0`` to time Eq. 17 on the whole batch).
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from lmdis.config import add_override_option, build_config
from lmdis.model import LandmarkAutoencoder
from lmdis.train import LandmarkObjective, select_device


def conv_throughput(device, size: int, batch: int = 16, channels: int = 64, repeats: int = 5) -> float:
    """GFLOP/s of a dense 3x3 convolution forward + backward (the roofline we compare to)."""
    inputs = torch.randn(batch, channels, size, size, device=device, requires_grad=True)
    weight = torch.randn(channels, channels, 3, 3, device=device, requires_grad=True)
    flops = 3 * 2 * batch * channels * channels * 9 * size * size  # forward + two backward convs
    for _ in range(2):
        F.conv2d(inputs, weight, padding=1).sum().backward()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        F.conv2d(inputs, weight, padding=1).sum().backward()
    _sync(device)
    return flops * repeats / (time.perf_counter() - start) / 1e9


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


CONVOLUTION_OPERATORS = ("aten::convolution_backward", "aten::mkldnn_convolution", "aten::_slow_conv2d_forward",
                         "aten::_slow_conv2d_backward", "aten::thnn_conv2d")


def operator_shares(step, steps: int, top: int = 5) -> dict:
    """Share of the CPU self time of ``steps`` calls of ``step`` per operator: convolutions together, then the top few.

    CPU only: on a GPU the time sits in kernels listed under their own names, not under these operators.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(steps):
            step()
    times = {event.key: event.self_cpu_time_total for event in profiler.key_averages()}
    total = sum(times.values())
    convolution = sum(value for key, value in times.items() if key in CONVOLUTION_OPERATORS)
    ranked = sorted(times.items(), key=lambda item: -item[1])[:top]
    return {"convolution_share": round(convolution / total, 3),
            "top_operators": {key: round(value / total, 3) for key, value in ranked}}


def measure(name: str, steps: int, device, profile: bool = False, overrides=()) -> dict:
    config = build_config(name, overrides)
    model = LandmarkAutoencoder(config.model).to(device).train()
    objective = LandmarkObjective(model, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = config.train.batch_size
    images = torch.rand(batch, config.model.channels, config.model.image_size, config.model.image_size, device=device)
    generator = torch.Generator().manual_seed(0)

    def step():
        total, _ = objective(images, 0, generator, False)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        step()
    flops_per_image = counter.get_total_flops() / batch
    step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    peak_conv = conv_throughput(device, config.model.padded_size)
    achieved = flops_per_image * batch / seconds / 1e9
    if device.type == "cuda":
        peak_memory = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    shares = operator_shares(step, steps) if profile else {}
    return {
        "preset": name,
        "overrides": [f"{section}.{key}={value}" for section, key, value in overrides],
        "image": f"{config.model.image_size}->{config.model.padded_size}",
        "K": config.model.num_landmarks,
        "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "batch": batch,
        "seconds_per_step": round(seconds, 3),
        "images_per_second": round(batch / seconds, 1),
        "train_GFLOP_per_image": round(flops_per_image / 1e9, 3),
        "achieved_GFLOP_s": round(achieved, 1),
        "dense_conv_GFLOP_s": round(peak_conv, 1),
        "fraction_of_conv_peak": round(achieved / peak_conv, 3),
        "peak_memory_MiB": round(peak_memory),
        **shares,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["celeba-10", "mtfl-cpu", "mnist-cpu"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--profile", action="store_true", help="add per-operator shares of the step time")
    add_override_option(parser, help="a setting of every listed preset (repeatable)")
    args = parser.parse_args()
    device = select_device(args.device)
    if args.profile and device.type != "cpu":
        parser.error(f"--profile measures CPU operator time; the device is {device} (run it with --device cpu)")
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name in args.presets:
        print(json.dumps(measure(name, args.steps, device, args.profile, args.set)), flush=True)


if __name__ == "__main__":
    main()
