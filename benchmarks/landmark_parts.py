"""Are the discovered landmarks parts? Each landmark's nearest annotated MTFL point over the test faces.

    python benchmarks/landmark_parts.py --checkpoint runs/hour-full-s0/checkpoint.pt
        [--data ../shared/data/mtfl] [--figure runs/parts.png]

Prints a table: for each discovered landmark, the annotated point (eyes, nose,
mouth corners) it lies closest to on average over the 2,995 test faces, and
the mean and standard deviation of that distance in pixels of the 80x80 crop
(``lmdis.evaluate.nearest_annotated_points``), then the NME. ``--figure``
writes Figure 9-style panels of test faces: MTFL is research-only data, so
keep the picture out of the repository (``runs/`` is git-ignored).
"""
from __future__ import annotations

import argparse
import json

from lmdis.checkpoint import model_from_checkpoint
from lmdis.evaluate import Benchmark, nearest_annotated_points

MTFL_CROP_SIDE = 80


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", help="MTFL root (default: the shared data folder)")
    parser.add_argument("--figure", help="where to write the Figure 9-style panels (never commit them)")
    args = parser.parse_args()

    model, config = model_from_checkpoint(args.checkpoint)
    benchmark = Benchmark("mtfl", args.data, config.model.image_size, config.model.channels)
    discovered = benchmark.discover(model)
    names = benchmark.protocol.point_names
    rows = nearest_annotated_points(discovered.test, benchmark.test_annotated, MTFL_CROP_SIDE)
    print(f"| landmark | nearest annotated point | mean distance (px, 80x80) | std (px) | next nearest |")
    print("|---|---|---|---|---|")
    for row in rows:
        order = sorted(range(len(names)), key=lambda m: row["mean_px_all"][m])
        runner_up = order[1]
        print(f"| {row['landmark']} | {names[row['nearest']]} | {row['mean_px']:.1f} | {row['std_px']:.1f} | "
              f"{names[runner_up]} ({row['mean_px_all'][runner_up]:.1f}) |")
    report = benchmark.report(model, discovered=discovered)
    print(json.dumps({"nme_percent": round(report["nme_percent"], 2), "points": list(names)}))
    if args.figure:
        benchmark.figure(discovered, path=args.figure, count=8)
        print(json.dumps({"figure": args.figure}))


if __name__ == "__main__":
    main()
