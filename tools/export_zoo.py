"""Turn a training checkpoint into a zoo model (lmdis/zoo/NAME.pt + NAME.json), measured as shipped.

    python tools/export_zoo.py --checkpoint runs/zoo-faces/checkpoint.pt --name faces --measure mtfl \
        --log runs/zoo-faces.log --description "..." --data "..." --data-terms "..." --machine "..." \
        --retrain "python -m lmdis train --preset mtfl-cpu --minutes 60 --out runs/zoo-faces"

The weights are stored as float16; the card's metrics are measured on the
model that :func:`lmdis.zoo.load_pretrained` returns from the written file
(``--measure mtfl``: the MTFL test NME of Sec. 4.2; ``--measure mnist``:
``benchmarks/mnist_morph.py``). Steps, batch size, training minutes and
seconds per step come from the checkpoint; ``--log`` (a
``benchmarks/mtfl_time_budget.py`` log) adds the NME curve it printed.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from lmdis import zoo
from lmdis.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def measure(name: str, kind: str, folder: Path, digits=None) -> dict:
    model, config = zoo.load_pretrained(name, folder=folder)
    if kind == "mtfl":
        from lmdis.evaluate import Benchmark

        benchmark = Benchmark("mtfl", None, config.model.image_size, config.model.channels)
        report = benchmark.report(model, torch.device("cpu"))
        return {"mtfl_test_nme_percent": round(report["nme_percent"], 2),
                "mtfl_test_median_percent": round(report["median_percent"], 2),
                "mean_shape_nme_percent": round(benchmark.mean_shape_report()["nme_percent"], 2),
                "protocol": "bias-free linear regression fitted on training_clean, tested on testing (Sec. 4.2)"}
    command = [sys.executable, str(ROOT / "benchmarks" / "mnist_morph.py"), "--zoo", name]
    command += ["--digits", *map(str, digits)] if digits else []
    output = subprocess.run(command,
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--measure", choices=["mtfl", "mnist"], required=True)
    parser.add_argument("--log", help="the training log with JSON evaluation lines")
    parser.add_argument("--description", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--data-terms", required=True)
    parser.add_argument("--machine", required=True)
    parser.add_argument("--retrain", required=True)
    parser.add_argument("--overrides", nargs="*", default=[], help="the --set values of the retrain command")
    parser.add_argument("--digits", type=int, nargs="+", help="--measure mnist on these test digits only")
    parser.add_argument("--folder", default=str(zoo.ZOO_FOLDER))
    args = parser.parse_args()

    checkpoint = load_checkpoint(args.checkpoint)
    config = checkpoint["config"]
    steps, batch = int(checkpoint["step"]), int(config["train"]["batch_size"])
    seconds = float(checkpoint.get("train_seconds", 0.0))
    fields = {"description": args.description, "data": args.data, "data_terms": args.data_terms,
              "preset": config["name"], "overrides": args.overrides, "steps": steps, "batch_size": batch,
              "images_seen": steps * batch, "training_minutes": round(seconds / 60, 1),
              "seconds_per_step": round(seconds / max(steps, 1), 3), "machine": args.machine,
              "metrics": {}, "retrain": args.retrain}
    folder = Path(args.folder)
    zoo.export(checkpoint, args.name, fields, folder=folder)
    fields["metrics"] = measure(args.name, args.measure, folder, args.digits)
    if args.log:
        curve = [json.loads(line) for line in Path(args.log).read_text().splitlines() if line.startswith('{"step"')]
        fields["metrics"]["curve"] = [{key: point[key] for key in ("step", "images_seen", "train_minutes",
                                                                      "nme_percent")} for point in curve]
    zoo.export(checkpoint, args.name, fields, folder=folder)
    print(json.dumps(zoo.card(args.name, folder=folder), indent=2))


if __name__ == "__main__":
    main()
