"""Do a model's landmarks follow the face, or the frame? (lmdis.evaluate.content_tracking_gain)

    python benchmarks/content_tracking.py --checkpoint runs/mtfl-final/checkpoint.pt [--data ../shared/data/mtfl]
        [--split testing] [--every 10]

Cuts two windows (80 % of the side, 10 % apart) from every ``--every``-th
MTFL image at its stored 80x80 resolution and prints, per landmark and axis,
how far the landmarks moved over how far the content moved (1 = on the face,
0 = fixed to the frame). Then warps the same images (at the model's size,
in its padded frame) with the model's own random transform of Eq. (8), once
in full and once without the similarity, and prints per landmark the
remaining error over the warp's displacement (lmdis.evaluate.warp_tracking;
0 = follows the warp, 1 = ignores it), in pixels of the padded frame.
"""
from __future__ import annotations

import argparse
import dataclasses
import json

import torch

from lmdis.checkpoint import model_from_checkpoint
from lmdis.data import open_dataset
from lmdis.evaluate import content_tracking_gain, warp_tracking


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", help="MTFL root (default: the shared data folder)")
    parser.add_argument("--split", default="testing")
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()

    model, config = model_from_checkpoint(args.checkpoint)
    data = open_dataset("mtfl", args.data, image_size=80, channels=config.model.channels, split=args.split)
    images = torch.stack([data[i]["image"] for i in range(0, len(data), args.every)])
    gains = content_tracking_gain(model.detect, images, config.model.image_size)
    print(json.dumps({"images": len(images), "step": torch.load(args.checkpoint, weights_only=True)["step"],
                      **{f"gain_{axis}": [round(float(v), 2) for v in value] for axis, value in gains.items()},
                      **{f"mean_gain_{axis}": round(float(value.mean()), 3) for axis, value in gains.items()}}))

    frames = open_dataset("mtfl", args.data, image_size=config.model.image_size, channels=config.model.channels,
                          split=args.split)
    padded = model.pad(torch.stack([frames[i]["image"] for i in range(0, len(frames), args.every)]))
    side = config.model.padded_size
    local = dataclasses.replace(config.transform, translation_range=0.0, rotation_std_degrees=0.0, log_scale_std=0.0)
    for name, transform in (("full", config.transform), ("tps_only", local)):
        with torch.no_grad():
            result = warp_tracking(lambda images: model.detector(images).landmarks, padded, transform)
        residual, locked = result["residual"] * side, result["locked"] * side
        print(json.dumps({"warp": name, "residual_px": round(float(residual.mean()), 2),
                          "locked_px": round(float(locked.mean()), 2),
                          "residual_over_locked": [round(float(v), 2) for v in residual / locked]}))


if __name__ == "__main__":
    main()
