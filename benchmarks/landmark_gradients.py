"""Which loss term shapes the landmarks, and when: gradient norms and decoder coverage over a run.

    python benchmarks/landmark_gradients.py --preset mtfl-cpu --steps 3000 --every 250 --out runs/gradients
        [--data ../shared/data/mtfl] [--set model.heatmap_form=density ...]

Trains the preset and every ``--every`` steps prints one JSON line: for each
term of Eq. (15) the norm of the gradient its weighted value sends to the
detector's landmark coordinates (``lmdis.diagnostics.landmark_gradient_norms``,
mean over 4 draws of the warp on 16 fixed training images), the part of it
that is the same under every warp (``drift_*``: the norm of the mean
gradient over 8 draws, ``lmdis.diagnostics.landmark_gradient_drift``; pure
warp noise would give about 0.35 of ``drift_*_per_draw``), and the share of
the decoder input's pixels owned by landmark channels per sigma_dec
(``lmdis.diagnostics.decoder_coverage``). The training's own random streams
are untouched.
"""
from __future__ import annotations

import argparse
import json

import torch

from lmdis.config import add_override_option, build_config
from lmdis.data import training_dataset
from lmdis.diagnostics import decoder_coverage, landmark_gradient_drift, landmark_gradient_norms
from lmdis.losses import LOSS_TERMS as TERM_NAMES
from lmdis.train import Trainer, training_view


def measure(trainer: Trainer, images: torch.Tensor, draws: int = 4) -> dict:
    config = trainer.config
    generator = torch.Generator().manual_seed(12345)
    sums: dict[str, float] = {}
    for _ in range(draws):
        norms = landmark_gradient_norms(trainer.objective, images, trainer.schedule_step(), generator)
        for name, value in norms.items():
            sums[name] = sums.get(name, 0.0) + value / draws
    drift = landmark_gradient_drift(trainer.objective, images, trainer.schedule_step(), generator, draws=8)
    with torch.no_grad():
        trainer.model.eval()
        landmarks = trainer.model.detect(training_view(images, config))
        trainer.model.train()
    coverage = decoder_coverage(landmarks, config.model.sigma_dec, config.model.image_size, config.model.heatmap_form)
    return {"step": trainer.step, **{f"grad_{name}": round(value, 4) for name, value in sums.items()},
            **{f"drift_{name}": round(value, 4) for name, value in drift.items()},
            "coverage": {str(sigma): round(value, 3) for sigma, value in coverage.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="mtfl-cpu")
    parser.add_argument("--data", help="data root (default: the preset's data set in the shared data folder)")
    parser.add_argument("--dataset", help="data set name (default: the preset's)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--out", required=True)
    add_override_option(parser)
    args = parser.parse_args()

    config = build_config(args.preset, args.set, args.steps)
    dataset = training_dataset(config, args.data, args.dataset)
    images = torch.stack([dataset[i]["image"] for i in range(16)])
    trainer = Trainer(config, dataset, args.out, progress=False, log=lambda line: None)
    print(json.dumps({"preset": args.preset, "terms": list(TERM_NAMES), "sigma_dec": list(config.model.sigma_dec),
                      "heatmap_form": config.model.heatmap_form}), flush=True)
    print(json.dumps(measure(trainer, images)), flush=True)
    while trainer.step < config.train.steps:
        trainer.fit(min(trainer.step + args.every, config.train.steps))
        print(json.dumps(measure(trainer, images)), flush=True)


if __name__ == "__main__":
    main()
