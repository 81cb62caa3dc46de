"""Do two lmdis trees train, detect and evaluate bit-identically? Seeded short runs, saved and compared.

    python tools/bit_identity.py runs/bit-before          # record, with the lmdis that imports
    python tools/bit_identity.py --compare runs/bit-before runs/bit-after

Recording runs the command line's own commands (the contract both trees
share) and the model's public methods, in ``OUT``:

- ``lmdis train`` of ``mnist-cpu`` (the embedded digits) and ``mtfl-cpu``
  (MTFL from ``--mtfl``, default ``../shared/data/mtfl``; skipped with a note
  when absent) for ``--steps`` steps with ``train.bn_recompute_images`` small:
  ``PRESET/checkpoint.pt`` (weights, optimiser state, every random
  generator, history), ``PRESET/landmarks.png`` and the command's JSON;
- ``lmdis landmarks`` of a few images (six embedded digits written as PNGs;
  the first six MTFL test crops, read where they are): ``PRESET/landmarks.csv``;
- ``model.detect`` and ``model(images)`` (the reconstruction) of the same
  images: ``PRESET/outputs.pt``;
- ``lmdis evaluate`` of the MTFL model (``--no-evaluate`` skips it):
  ``mtfl-cpu/evaluate.json``.

Every run uses the CPU, one thread (set ``OMP_NUM_THREADS=1``) and no loader
workers, so its numbers depend on the code alone. To record another tree,
put it first on the path: ``PYTHONPATH=/tmp/lmdis-before python
tools/bit_identity.py runs/bit-before`` (``OUT/manifest.json`` says which
lmdis was used).

``--compare A B`` checks every file of A against B: tensors bit for bit
(dtype, shape and bytes), CSV and PNG files byte for byte, JSON and other
values exactly, except wall-clock timings (``TIMING_KEYS``). It prints one
line per file and exits 1 on any difference.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_MTFL = REPOSITORY.parent / "shared" / "data" / "mtfl"
PRESETS = ("mnist-cpu", "mtfl-cpu")
IMAGE_COUNT = 6
TIMING_KEYS = frozenset({"seconds_per_step", "train_seconds"})


def _cli(arguments: list[str]) -> str:
    """Run ``lmdis ARGUMENTS`` in this process; its standard output, or SystemExit on a non-zero status."""
    from lmdis.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(arguments)
    if status != 0:
        raise SystemExit(f"lmdis {' '.join(arguments)} exited with {status}")
    return printed.getvalue()


def _model_from_checkpoint(path: Path):
    try:
        from lmdis.checkpoint import model_from_checkpoint
    except ImportError:  # the tree before lmdis.checkpoint existed
        from lmdis.train import model_from_checkpoint
    return model_from_checkpoint(path, "cpu")


def _mnist_images(folder: Path) -> list[str]:
    """Six embedded digits, evenly spaced over the sorted set, as 8-bit PNGs; their paths relative to the run."""
    from PIL import Image

    from lmdis.data import open_dataset

    digits = open_dataset("mnist-embedded")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, index in enumerate(range(0, len(digits), len(digits) // IMAGE_COUNT)[:IMAGE_COUNT]):
        pixels = (digits[index]["image"][0] * 255).round().to(torch.uint8).numpy()
        path = folder / f"{number:02d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path.as_posix())
    return paths


def _mtfl_images(root: Path) -> list[str]:
    """The first six MTFL test crops, where they are."""
    lines = [line.split() for line in (root / "testing.txt").read_text().splitlines() if line.strip()]
    return [str(root / fields[0].replace("\\", "/")) for fields in lines[:IMAGE_COUNT]]


def record(out: Path, mtfl_root: Path, steps: int, evaluate: bool) -> None:
    import lmdis

    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)  # every path the commands write is relative, so two recordings name the same files
    source = Path(lmdis.__file__).resolve().parents[1]
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    manifest = {"lmdis": str(source), "commit": commit.strip(), "torch": torch.__version__, "steps": steps,
                "threads": torch.get_num_threads(), "presets": {}}
    for name in PRESETS:
        data = []
        if name == "mtfl-cpu":
            if not (mtfl_root / "training.txt").is_file():
                print(f"skipped {name}: no MTFL at {mtfl_root}")
                manifest["presets"][name] = f"skipped: no MTFL at {mtfl_root}"
                continue
            data = ["--data", str(mtfl_root)]
        folder = Path(name)
        print(f"{name}: training {steps} steps", flush=True)
        trained = _cli(["train", "--preset", name, "--steps", str(steps), "--out", str(folder), "--overwrite",
                        "--no-progress", "--device", "cpu", "--set", "train.bn_recompute_images=64", *data])
        (folder / "train.json").write_text(trained.strip().splitlines()[-1] + "\n")
        images = _mnist_images(Path("mnist-images")) if name == "mnist-cpu" else _mtfl_images(mtfl_root)
        print(f"{name}: landmarks of {len(images)} images", flush=True)
        _cli(["landmarks", "--checkpoint", str(folder / "checkpoint.pt"), "--images", *images,
              "--out", str(folder / "landmarks.csv"), "--device", "cpu", "--num-workers", "0"])
        from lmdis.data import load_image

        model, config = _model_from_checkpoint(folder / "checkpoint.pt")
        batch = torch.stack([load_image(path, config.model.channels, config.model.image_size) for path in images])
        with torch.no_grad():
            outputs = {"images": batch, "detect": model.detect(batch), "reconstruction": model(batch)}
        torch.save(outputs, folder / "outputs.pt")
        if name == "mtfl-cpu" and evaluate:
            print(f"{name}: evaluate", flush=True)
            summary = _cli(["evaluate", "--checkpoint", str(folder / "checkpoint.pt"), "--dataset", "mtfl",
                            "--data", str(mtfl_root), "--device", "cpu"])
            (folder / "evaluate.json").write_text(summary.strip().splitlines()[-1] + "\n")
        manifest["presets"][name] = "recorded"
    (Path("manifest.json")).write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest))


# --------------------------------------------------------------------------- comparing

def _differences(a, b, where: str) -> list[str]:
    """Every place two loaded values differ, as ``where: what``; tensors by their bytes."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return [f"{where}: {type(a).__name__} vs {type(b).__name__}"]
        if a.dtype != b.dtype or a.shape != b.shape:
            return [f"{where}: {a.dtype} {tuple(a.shape)} vs {b.dtype} {tuple(b.shape)}"]
        same = torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))
        return [] if same else [f"{where}: tensors differ"]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(map(str, set(a) ^ set(b)))} in one only"]
        return [found for key in a if key not in TIMING_KEYS
                for found in _differences(a[key], b[key], f"{where}.{key}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} entries"]
        return [found for index, (x, y) in enumerate(zip(a, b)) for found in _differences(x, y, f"{where}[{index}]")]
    return [] if type(a) is type(b) and a == b else [f"{where}: {a!r} vs {b!r}"]


def _tensor_count(value) -> int:
    if isinstance(value, torch.Tensor):
        return 1
    if isinstance(value, dict):
        return sum(_tensor_count(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_count(item) for item in value)
    return 0


def compare(first: Path, second: Path) -> int:
    def recorded(folder: Path) -> list[Path]:
        return sorted(path.relative_to(folder) for path in folder.rglob("*")
                      if path.is_file() and path.name != "manifest.json")

    files, failures = recorded(first), 0
    for relative in files:
        a, b = first / relative, second / relative
        if not b.is_file():
            print(f"MISSING    {relative} (not in {second})")
            failures += 1
            continue
        if relative.suffix == ".pt":
            left, right = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
            found, detail = _differences(left, right, relative.as_posix()), f"{_tensor_count(left)} tensors"
        elif relative.suffix == ".json":
            left = json.loads(a.read_text())
            found, detail = _differences(left, json.loads(b.read_text()), relative.as_posix()), "values"
        else:
            found = [] if a.read_bytes() == b.read_bytes() else [f"{relative}: bytes differ"]
            detail = f"{a.stat().st_size} bytes"
        print(f"{'identical' if not found else 'DIFFERENT':10} {relative} ({detail})")
        for line in found[:10]:
            print(f"           {line}")
        failures += bool(found)
    extra = [relative for relative in recorded(second) if not (first / relative).is_file()]
    for relative in extra:
        print(f"MISSING    {relative} (not in {first})")
    failures += len(extra)
    total = len(files) + len(extra)
    print(f"{total - failures} of {total} files identical (timings ignored: {', '.join(sorted(TIMING_KEYS))})")
    return 1 if failures else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", type=Path, help="folder to record into")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="compare two recordings")
    parser.add_argument("--mtfl", type=Path, default=DEFAULT_MTFL, help=f"MTFL root (default {DEFAULT_MTFL})")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--no-evaluate", action="store_true", help="skip lmdis evaluate of the MTFL model")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*(path.resolve() for path in args.compare))
    if args.out is None:
        parser.error("give a folder to record into, or --compare A B")
    record(args.out.resolve(), args.mtfl.resolve(), args.steps, not args.no_evaluate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
