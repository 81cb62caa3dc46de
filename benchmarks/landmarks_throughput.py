"""Faces per second and peak memory of ``lmdis landmarks`` on folders of many images.

    python benchmarks/landmarks_throughput.py [--counts 1000 20000] [--checkpoint CKPT] [--mtfl DIR]

Each case runs the real command, ``python -m lmdis landmarks --checkpoint
CKPT --images FOLDER --out CSV``, in a fresh process, as a user would:

- ``generated-N``: N small PNGs (64x64, smooth random colours) written to a
  temporary folder;
- ``mtfl-test``: the 2,995 MTFL test crops (80x80 JPEGs, ``DIR/AFLW``), when
  the shared data folder has them.

It prints one JSON line per case: the seconds end to end (Python start and
model load included), faces/s end to end and after the fixed start-up cost
(the time of a one-image run), and, from a second run of the same case, the
peak memory of the command with its decoding workers, sampled every 50 ms
over the process tree (sampling costs CPU, so the timed run is not
sampled): the sum of
proportional set sizes (PSS: pages shared by the forked workers counted
once) and, for comparison, the sum of resident sets (RSS, shared pages
counted in every process). Without ``--checkpoint`` the model is an untrained ``mtfl-cpu``
(48x48 input, K = 10): the time of a detector pass does not depend on its
weights. Throughput is only meaningful on otherwise idle cores; memory is.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image

from lmdis.checkpoint import atomic_save
from lmdis.config import preset
from lmdis.data import shared_data_root
from lmdis.model import LandmarkAutoencoder

REPO = Path(__file__).resolve().parents[1]


def write_images(folder: Path, count: int, side: int = 64, seed: int = 0) -> None:
    """``count`` PNGs of smooth random colour (8x8 noise upsampled): small files that decode like photos."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        coarse.resize((side, side), Image.Resampling.BILINEAR).save(folder / f"{index:06d}.png")


def untrained_checkpoint(path: Path, name: str = "mtfl-cpu") -> Path:
    config = preset(name)
    torch.manual_seed(0)
    model = LandmarkAutoencoder(config.model)
    atomic_save({"model": model.state_dict(), "config": config.to_dict(), "step": 0}, path)
    return path


def run_landmarks(checkpoint: Path, images: Path, out: Path, extra: list[str], sample_memory: bool) -> dict:
    """Run the command once: its wall time, or the peak PSS and RSS summed over its process tree."""
    command = [sys.executable, "-m", "lmdis", "landmarks", "--checkpoint", str(checkpoint),
               "--images", str(images), "--out", str(out), "--device", "cpu", *extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched, peak_pss, peak_rss = psutil.Process(process.pid), 0, 0
    while sample_memory and process.poll() is None:
        try:
            memory = [member.memory_full_info() for member in [watched, *watched.children(recursive=True)]]
            peak_pss = max(peak_pss, sum(info.pss for info in memory))
            peak_rss = max(peak_rss, sum(info.rss for info in memory))
        except psutil.Error:
            pass  # a worker ended between listing and reading
        time.sleep(0.05)
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-2000:]}")
    return {"seconds": seconds, "peak_pss_mib": round(peak_pss / 2**20, 1), "peak_rss_mib": round(peak_rss / 2**20, 1),
            "summary": json.loads(stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", type=int, nargs="*", default=[1000, 20000], help="generated folders' sizes")
    parser.add_argument("--checkpoint", type=Path, help="default: an untrained mtfl-cpu model")
    parser.add_argument("--mtfl", type=Path, help="MTFL root (default: the shared data folder's, when present)")
    parser.add_argument("--no-mtfl", action="store_true", help="skip the MTFL test crops")
    parser.add_argument("--work-dir", type=Path, help="where the images are generated (default: a temporary folder)")
    parser.add_argument("--landmarks-args", default="", help="more options for the command, e.g. '--batch-size 128'")
    args = parser.parse_args()
    extra = args.landmarks_args.split()

    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        work = Path(work)
        checkpoint = args.checkpoint or untrained_checkpoint(work / "checkpoint.pt")
        cases = []
        for count in args.counts:
            started = time.perf_counter()
            write_images(work / f"generated-{count}", count)
            print(f"wrote {count} PNGs in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
            cases.append((f"generated-{count}", work / f"generated-{count}"))
        mtfl = args.mtfl or (shared_data_root() / "mtfl" if shared_data_root() else None)
        if not args.no_mtfl and mtfl is not None and (mtfl / "AFLW").is_dir():
            cases.append(("mtfl-test", mtfl / "AFLW"))
        elif not args.no_mtfl:
            print("MTFL test crops not found; skipping them", file=sys.stderr)
        write_images(work / "one", 1)
        start_up = run_landmarks(checkpoint, work / "one", work / "one.csv", extra, sample_memory=False)
        memory = run_landmarks(checkpoint, work / "one", work / "one.csv", extra, sample_memory=True)
        print(json.dumps({"case": "one image (start-up cost)", "seconds": round(start_up["seconds"], 2),
                          "peak_pss_mib": memory["peak_pss_mib"], "peak_rss_mib": memory["peak_rss_mib"]}),
              flush=True)
        for name, folder in cases:
            result = run_landmarks(checkpoint, folder, work / f"{name}.csv", extra, sample_memory=False)
            memory = run_landmarks(checkpoint, folder, work / f"{name}.csv", extra, sample_memory=True)
            count = result["summary"]["images"]
            streaming = max(result["seconds"] - start_up["seconds"], 1e-9)
            print(json.dumps({"case": name, "images": count, "seconds": round(result["seconds"], 2),
                              "faces_per_second": round(count / result["seconds"], 1),
                              "faces_per_second_after_start_up": round(count / streaming, 1),
                              "peak_pss_mib": memory["peak_pss_mib"], "peak_rss_mib": memory["peak_rss_mib"],
                              "cpus": os.cpu_count(),
                              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "options": extra}), flush=True)


if __name__ == "__main__":
    main()
