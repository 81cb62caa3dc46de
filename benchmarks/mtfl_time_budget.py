"""Train a preset on MTFL for a wall-clock budget and print the NME as it goes.

    python benchmarks/mtfl_time_budget.py --preset mtfl-cpu --minutes 60 --eval-every 1500 --out runs/mtfl-budget
        [--data ../shared/data/mtfl] [--set train.learning_rate=0.001 ...]
    python benchmarks/mtfl_time_budget.py --preset mtfl-cpu --steps 7625 --eval-every 1000 --out runs/mtfl-steps

Trains without labels on the MTFL training images, and every ``--eval-every``
steps fits the bias-free regressor on ``training_clean`` and prints the NME
(% inter-ocular) on ``testing`` (Sec. 4.2), with the training minutes spent
so far (evaluation time excluded) and the images seen. The mean-shape floor
is printed first. The preset's schedule runs as fractions of ``--minutes``
(``Trainer(minutes=...)``), so a slower machine still reaches its decays.
With ``--steps N`` instead, the schedule is the preset's scaled to N steps
(``config.shortened``) and no clock enters: runs that share the cores with
other work still compare exactly at equal steps and images.
"""
from __future__ import annotations

import argparse
import json

from lmdis.config import add_override_option, build_config, shortened
from lmdis.data import training_dataset
from lmdis.evaluate import Benchmark
from lmdis.train import Trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="mtfl-cpu")
    parser.add_argument("--data", help="MTFL root (default: the shared data folder)")
    schedule = parser.add_mutually_exclusive_group()
    schedule.add_argument("--minutes", type=float, help="the schedule on this time budget (default 60)")
    schedule.add_argument("--steps", type=int, help="a step-based schedule of this length instead of a time budget")
    parser.add_argument("--eval-every", type=int, default=1500)
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="auto")
    add_override_option(parser)
    args = parser.parse_args()

    config = build_config(args.preset, args.set)
    if args.steps is not None:
        config = shortened(config, args.steps)
    train_images = training_dataset(config, args.data, "mtfl")
    benchmark = Benchmark("mtfl", args.data, config.model.image_size, config.model.channels)
    print(json.dumps({"mean_shape_nme_percent": round(benchmark.mean_shape_report()["nme_percent"], 2)}), flush=True)

    trainer = Trainer(config, train_images, args.out, device=args.device, progress=False, resume=True,
                      log=lambda line: print(line, flush=True),
                      minutes=None if args.steps is not None else (60 if args.minutes is None else args.minutes))
    while not trainer.budget_spent() and trainer.step < config.train.steps:
        steps_before, seconds_before = trainer.step, trainer.train_seconds
        # The next multiple of --eval-every, so a resumed run reports at the same steps as an unbroken one.
        trainer.fit(min((trainer.step // args.eval_every + 1) * args.eval_every, config.train.steps))
        report = benchmark.report(trainer.evaluation_model, trainer.device)
        seconds_per_step = (trainer.train_seconds - seconds_before) / max(trainer.step - steps_before, 1)
        print(json.dumps({"step": trainer.step, "images_seen": trainer.step * config.train.batch_size,
                          "train_minutes": round(trainer.train_seconds / 60, 2),
                          "seconds_per_step": round(seconds_per_step, 3), "schedule_step": trainer.schedule_step(),
                          "nme_percent": round(report["nme_percent"], 2), "n_test": report["n_test"]}), flush=True)


if __name__ == "__main__":
    main()
