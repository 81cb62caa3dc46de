"""How much of an MTFL error comes from the train/test crop mismatch.

    python benchmarks/mtfl_domain_gap.py --checkpoint runs/mtfl/checkpoint.pt [--data ../shared/data/mtfl]

Detects the landmarks of ``training_clean`` and ``testing`` once, then prints
the NME (% inter-ocular, Sec. 4.2) of three regressions with their mean-shape
floors: the protocol (fit on training_clean, test on testing), in the
training domain (fit on a random 5,000 of training_clean, test on the rest),
and in the test domain (fit on the first 2,000 test faces, test on the rest).
It also prints the mean inter-ocular distance of each split, in pixels of
the 80x80 crops.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from lmdis.checkpoint import model_from_checkpoint
from lmdis.data import InMemoryDataset, open_dataset
from lmdis.data.mtfl import IMAGE_SIZE as MTFL_IMAGE_SIZE
from lmdis.evaluate import detect_all, mean_shape_report, regression_report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", help="MTFL root (default: the shared data folder)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model, config = model_from_checkpoint(args.checkpoint)
    options = {"image_size": config.model.image_size, "channels": config.model.channels}
    clean = InMemoryDataset(open_dataset("mtfl", args.data, split="training_clean", **options))
    test = InMemoryDataset(open_dataset("mtfl", args.data, split="testing", **options))
    found_clean, found_test = detect_all(model, clean), detect_all(model, test)
    clean_points, test_points = clean.annotated_landmarks(), test.annotated_landmarks()
    order = np.random.default_rng(0).permutation(len(clean_points))
    fit, held = order[:5000], order[5000:]
    cases = {
        "protocol (training_clean -> testing)": (found_clean, clean_points, found_test, test_points),
        "training domain (5,000 -> rest)": (found_clean[fit], clean_points[fit], found_clean[held], clean_points[held]),
        "test domain (2,000 -> rest)": (found_test[:2000], test_points[:2000], found_test[2000:], test_points[2000:]),
    }
    for name, (fit_found, fit_points, test_found, held_points) in cases.items():
        print(json.dumps({"case": name,
                          "nme_percent": round(regression_report(fit_found, fit_points, test_found, held_points)["nme_percent"], 2),
                          "mean_shape_percent": round(mean_shape_report(fit_points, held_points)["nme_percent"], 2)}))
    for name, points in (("training_clean", clean_points), ("testing", test_points)):
        distance = np.linalg.norm(points[:, 0] - points[:, 1], axis=1).mean() * MTFL_IMAGE_SIZE
        print(json.dumps({"split": name, "mean_interocular_px": round(float(distance), 1)}))


if __name__ == "__main__":
    main()
