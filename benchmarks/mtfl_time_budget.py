"""Train a preset on MTFL for a wall-clock budget and print the NME as it goes.

    python benchmarks/mtfl_time_budget.py --preset mtfl-cpu --minutes 60 --eval-every 1500 --out runs/mtfl-budget
        [--data ../shared/data/mtfl] [--set train.learning_rate=0.001 ...]

Trains without labels on the MTFL training images, and every ``--eval-every``
steps fits the bias-free regressor on ``training_clean`` and prints the NME
(% inter-ocular) on ``testing`` (Sec. 4.2), with the training minutes spent
so far (evaluation time excluded). The mean-shape floor is printed first.
"""
from __future__ import annotations

import argparse
import json
import time

from lmdis.cli import _parse_override, build_config
from lmdis.data import MTFL_INTEROCULAR, InMemoryDataset, open_dataset
from lmdis.evaluate import detect_all, mean_shape_report, regression_report
from lmdis.train import Trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="mtfl-cpu")
    parser.add_argument("--data", help="MTFL root (default: the shared data folder)")
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--eval-every", type=int, default=1500)
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", action="append", type=_parse_override, default=[])
    args = parser.parse_args()

    config = build_config(args.preset, args.set)
    options = {"image_size": config.model.image_size, "channels": config.model.channels}
    train_images = InMemoryDataset(open_dataset("mtfl", args.data, split="training", **options))
    labelled = InMemoryDataset(open_dataset("mtfl", args.data, split="training_clean", **options))
    test = InMemoryDataset(open_dataset("mtfl", args.data, split="testing", **options))
    floor = mean_shape_report(labelled.annotated_landmarks(), test.annotated_landmarks())
    print(json.dumps({"mean_shape_nme_percent": round(floor["nme_percent"], 2)}), flush=True)

    trainer = Trainer(config, train_images, args.out, device=args.device, progress=False, resume=True,
                      log=lambda line: print(line, flush=True))
    trained = 0.0
    while trained < args.minutes * 60 and trainer.step < config.train.steps:
        started = time.perf_counter()
        trainer.fit(min(trainer.step + args.eval_every, config.train.steps))
        trained += time.perf_counter() - started
        report = regression_report(detect_all(trainer.model, labelled, device=trainer.device),
                                   labelled.annotated_landmarks(),
                                   detect_all(trainer.model, test, device=trainer.device),
                                   test.annotated_landmarks(), MTFL_INTEROCULAR)
        print(json.dumps({"step": trainer.step, "train_minutes": round(trained / 60, 1),
                          "nme_percent": round(report["nme_percent"], 2), "n_test": report["n_test"]}), flush=True)


if __name__ == "__main__":
    main()
