"""What MTFL NME a landmark detector of a given precision can reach, from the annotations alone.

    python benchmarks/mtfl_ceilings.py [--data ../shared/data/mtfl] [--detector-size 48]

No model is involved: "discovered" landmarks are made from the annotations
and scored with the protocol of Sec. 4.2 (bias-free regression fitted on
``training_clean``, NME in % inter-ocular on ``testing``). It prints

- the mean-shape floor;
- perfect pose tracking: each face's own best similarity transform of the
  mean training shape (``lmdis.evaluate.similarity_projection``), i.e. what a
  detector that follows translation, scale and rotation exactly, but no
  change of shape, could tell the regressor;
- the annotations with Gaussian noise of standard deviation ``sigma`` per
  coordinate, as K = 10 landmarks (two independently noisy copies of the 5
  points), for sigma in pixels of the 80x80 crops and of the detector's frame.

This turns "aim below 8 %" into a landmark precision: the noise at which the
curve crosses 8 % is the precision the discovered landmarks must have.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from lmdis.data import open_dataset
from lmdis.data.mtfl import IMAGE_SIZE as MTFL_IMAGE_SIZE
from lmdis.evaluate import mean_shape_report, regression_report, similarity_projection

NOISE_PX = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)  # in pixels of the 80x80 crops
COPIES = 2  # K = 10 = 2 x 5 points, the K of the measurement


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="MTFL root (default: the shared data folder)")
    parser.add_argument("--detector-size", type=int, default=48, help="side of the detector's frame, for the px column")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train = open_dataset("mtfl", args.data, split="training_clean").annotated_landmarks()
    test = open_dataset("mtfl", args.data, split="testing").annotated_landmarks()

    def score(train_found, test_found) -> float:
        return round(regression_report(train_found, train, test_found, test)["nme_percent"], 2)

    print(json.dumps({"case": "mean shape", "nme_percent": round(mean_shape_report(train, test)["nme_percent"], 2)}))
    template = train.mean(axis=0)
    print(json.dumps({"case": "perfect pose tracking (similarity of the mean shape)",
                      "nme_percent": score(similarity_projection(train, template),
                                           similarity_projection(test, template))}))
    rng = np.random.default_rng(args.seed)
    for sigma_px in NOISE_PX:
        sigma = sigma_px / MTFL_IMAGE_SIZE

        def noisy(points):
            return np.concatenate([points + rng.normal(0, sigma, points.shape) for _ in range(COPIES)], axis=1)

        print(json.dumps({"case": f"annotations + noise, K={COPIES * train.shape[1]}",
                          "sigma_px_80": sigma_px,
                          f"sigma_px_{args.detector_size}": round(sigma_px * args.detector_size / MTFL_IMAGE_SIZE, 2),
                          "nme_percent": score(noisy(train), noisy(test))}))


if __name__ == "__main__":
    main()
