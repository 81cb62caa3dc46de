"""Command line: ``python -m lmdis {train, landmarks, prepare, evaluate}``.

The contract scripts rely on:

- ``train --preset NAME [--data PATH] --out DIR [--steps N] [--minutes M] [--resume]``
  writes ``DIR/checkpoint.pt`` and ``DIR/landmarks.png``; ``--steps`` is the
  total step count, so with ``--resume`` training continues up to it;
  ``--minutes`` runs the schedule as fractions of a training-time budget;
- ``landmarks --checkpoint FILE --images DIR_OR_FILES --out FILE.csv`` writes
  ``path,x1,y1,...,xK,yK`` per image in that image's own pixel coordinates
  (pixel centres at integers, 0-indexed);
- ``prepare --dataset NAME --data ROOT --out DIR [--split S]`` writes the
  prepared split (crops, resizing of Sec. 4.1 / App. G.1) as ``DIR/NNNNNN.png``
  plus ``DIR/landmarks.csv``, readable as ``--dataset folder``;
- ``evaluate --checkpoint FILE --dataset NAME --data PATH [--few-shot]
  [--attributes] [--figure PNG]`` prints one JSON object with ``nme_percent``,
  ``median_percent``, ``n_train``, ``n_test``, ``K``, ``normaliser``,
  ``mean_shape_nme_percent`` (Sec. 4.2, App. C.2), and ``few_shot``
  (App. F.1), ``attributes`` (Sec. 4.3) and ``figure`` when asked.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch

from lmdis.config import Config, preset, preset_names


def _parse_override(text: str) -> tuple[str, str, object]:
    """``section.key=value`` with a JSON value (plain strings allowed)."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise argparse.ArgumentTypeError(f"--set expects section.key=value (e.g. train.batch_size=8), got {text!r}")
    path, raw = text.split("=", 1)
    section, key = path.split(".", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return section, key, value


def build_config(name: str, overrides=(), steps: int | None = None) -> Config:
    values = preset(name).to_dict()
    for section, key, value in overrides:
        if section not in values or not isinstance(values[section], dict) or key not in values[section]:
            raise ValueError(f"unknown setting {section}.{key} for --set")
        values[section][key] = value
    config = Config.from_dict(values)
    if steps is not None:
        if steps < 1:
            raise ValueError(f"--steps must be positive, got {steps}")
        config.train.steps = steps
    return config


def training_dataset(config: Config, data: str | None, dataset: str | None = None):
    """The preset's data set (or ``dataset``) read from ``data``, cached in memory."""
    from lmdis.data import InMemoryDataset, open_dataset
    from lmdis.train import context_size

    name = dataset or config.train.dataset
    options = {"image_size": context_size(config), "channels": config.model.channels}
    if config.train.split:
        options["split"] = config.train.split
    return InMemoryDataset(open_dataset(name, root=data, **options))


def save_landmark_figure(model, dataset, path: Path, count: int = 16) -> Path:
    from lmdis.plotting import landmark_grid
    from lmdis.tps import centre_crop

    # Evenly spaced items: sorted data sets (MNIST by digit) show their variety.
    indices = torch.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().long().tolist()
    # Loaded with train.warp_context the images are larger: show the training view.
    images = centre_crop(torch.stack([dataset[i]["image"] for i in indices]), model.config.image_size)
    with torch.no_grad():
        landmarks = model.eval().detect(images.to(next(model.parameters()).device)).cpu()
    landmark_grid(images, landmarks, path=path, title="discovered landmarks")
    return path


def command_train(args) -> int:
    from lmdis.train import Trainer

    config = build_config(args.preset, args.set or (), args.steps)
    if args.num_workers is not None:
        config.train.num_workers = args.num_workers
    config.train.amp = args.amp or config.train.amp
    config.train.channels_last = args.channels_last or config.train.channels_last
    if args.minutes is not None and not args.minutes > 0:
        raise ValueError(f"--minutes must be a positive number of minutes, got {args.minutes}")
    dataset = training_dataset(config, args.data, args.dataset)
    trainer = Trainer(config, dataset, args.out, device=args.device, progress=not args.no_progress,
                      resume=args.resume, minutes=args.minutes)
    if args.resume and trainer.resumed_from is None:
        print(f"no checkpoint in {args.out}; starting from step 0", flush=True)
    trainer.fit()
    if trainer.rank == 0:
        figure = save_landmark_figure(trainer.model, dataset, Path(args.out) / "landmarks.png")
        print(json.dumps({"checkpoint": str(trainer.checkpoint_path), "figure": str(figure), "step": trainer.step,
                          "final": trainer.history[-1] if trainer.history else None}))
    return 0


def command_landmarks(args) -> int:
    from lmdis.data import image_size_of, list_images, load_image, normalised_to_pixel
    from lmdis.train import model_from_checkpoint, select_device

    device = select_device(args.device)
    model, config = model_from_checkpoint(args.checkpoint, device)
    paths = list_images(args.images)
    size = config.model.image_size
    rows = []
    with torch.no_grad():
        for start in range(0, len(paths), args.batch_size):
            chunk = paths[start:start + args.batch_size]
            images = torch.stack([load_image(p, config.model.channels, size) for p in chunk]).to(device)
            found = model.detect(images).cpu().numpy()
            for path, points in zip(chunk, found):
                width, height = image_size_of(path)
                pixels = normalised_to_pixel(points, width, height)
                rows.append([str(path), *[f"{value:.3f}" for value in pixels.reshape(-1)]])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    k = config.model.num_landmarks
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", *[f"{axis}{i}" for i in range(1, k + 1) for axis in ("x", "y")]])
        writer.writerows(rows)
    print(json.dumps({"images": len(rows), "K": k, "csv": str(out)}))
    return 0


def command_evaluate(args) -> int:
    from lmdis.evaluate import Benchmark
    from lmdis.train import model_from_checkpoint, select_device

    if args.few_shot_repeats < 1:
        raise ValueError(f"--few-shot-repeats must be positive, got {args.few_shot_repeats}")
    device = select_device(args.device)
    model, config = model_from_checkpoint(args.checkpoint, device)
    # Each image is read once per split (twice for the figure's few): caching would not pay.
    benchmark = Benchmark(args.dataset, args.data, config.model.image_size, config.model.channels, cache=False)
    if args.attributes:
        benchmark.attribute_labels("fit")  # fails before the slow part on data sets without attributes
    discovered = benchmark.discover(model, device)
    summary = benchmark.report(model, device, discovered)
    summary["mean_shape_nme_percent"] = benchmark.mean_shape_report()["nme_percent"]
    if args.few_shot:
        summary["few_shot"] = benchmark.few_shot(discovered, repeats=args.few_shot_repeats, seed=args.seed)
    if args.attributes:
        summary["attributes"] = benchmark.attributes(discovered)
    if args.figure:
        figure = Path(args.figure)
        figure.parent.mkdir(parents=True, exist_ok=True)
        benchmark.figure(discovered, figure)
        grid = figure.with_name(f"{figure.stem}_discovered{figure.suffix or '.png'}")
        save_landmark_figure(model, benchmark.test, grid)
        summary["figure"], summary["landmark_figure"] = str(figure), str(grid)
    summary["checkpoint"] = str(args.checkpoint)
    print(json.dumps(summary))
    return 0


def command_prepare(args) -> int:
    from lmdis.data import export_image_folder, open_dataset

    dataset = open_dataset(args.dataset, root=args.data, split=args.split, image_size=args.image_size)
    summary = export_image_folder(dataset, args.out)
    summary.update(dataset=args.dataset, split=args.split)
    print(json.dumps(summary))
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="lmdis", description=__doc__.split("\n")[0])
    commands = main.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a landmark autoencoder")
    train.add_argument("--preset", required=True, help=f"one of: {', '.join(preset_names())}")
    train.add_argument("--data", help="data set root (not needed for the embedded MNIST)")
    train.add_argument("--dataset", help="override the preset's data set: mnist-embedded, mnist, mtfl, folder, celeba, aflw, ...")
    train.add_argument("--out", required=True, help="output folder for checkpoint.pt and landmarks.png")
    train.add_argument("--steps", type=int, help="total optimisation steps (default: the preset's)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    train.add_argument("--minutes", type=float,
                       help="training-time budget: the preset's schedule (LR steps, lambda_recon raises, "
                            "landmark-TPS warm-up) runs as fractions of it, and training stops when it is spent")
    train.add_argument("--device", default="auto")
    train.add_argument("--num-workers", type=int)
    train.add_argument("--amp", action="store_true", help="mixed precision (fp16 on CUDA)")
    train.add_argument("--channels-last", action="store_true")
    train.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")
    train.add_argument("--set", action="append", type=_parse_override, metavar="SECTION.KEY=VALUE",
                       help="override one config value, e.g. --set model.num_landmarks=30")
    train.set_defaults(handler=command_train)

    landmarks = commands.add_parser("landmarks", help="write the landmarks of images to a CSV")
    landmarks.add_argument("--checkpoint", required=True)
    landmarks.add_argument("--images", required=True, nargs="+", help="a folder, or image files")
    landmarks.add_argument("--out", required=True)
    landmarks.add_argument("--device", default="auto")
    landmarks.add_argument("--batch-size", type=int, default=64)
    landmarks.set_defaults(handler=command_landmarks)

    prepare = commands.add_parser("prepare", help="write a data set's prepared images and landmark CSV to a folder")
    prepare.add_argument("--dataset", required=True, help="a name lmdis.data.open_dataset knows, e.g. celeba, aflw, cat")
    prepare.add_argument("--data", help="root of the original distribution (see data/README.md)")
    prepare.add_argument("--split", help="default: the data set's training split")
    prepare.add_argument("--image-size", type=int, help="default: the data set's Table 6 size")
    prepare.add_argument("--out", required=True, help="folder for NNNNNN.png and landmarks.csv")
    prepare.set_defaults(handler=command_prepare)

    evaluate = commands.add_parser("evaluate", help="regress onto annotated landmarks (Sec. 4.2), print JSON")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--dataset", default="mtfl", help="a data set with annotated landmarks: mtfl, celeba, "
                          "aflw, cat, car, human")
    evaluate.add_argument("--data", help="data set root (MTFL: default the shared data folder)")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--few-shot", action="store_true",
                          help="add the error vs number of labelled images curve (App. F.1)")
    evaluate.add_argument("--few-shot-repeats", type=int, default=10, help="random draws per size (default 10)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the few-shot draws")
    evaluate.add_argument("--attributes", action="store_true",
                          help="linear-SVM attribute recognition from the landmarks (Sec. 4.3, CelebA only)")
    evaluate.add_argument("--figure", help="write a Figure 9 style PNG here (and FIGURE_discovered.png)")
    evaluate.set_defaults(handler=command_evaluate)
    return main


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "images", None) and len(args.images) == 1:
        args.images = args.images[0]
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        print(f"lmdis {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
