"""Do a digit model's landmarks sit on the strokes, and does it decode digits as themselves?

    python benchmarks/mnist_morph.py --checkpoint runs/mnist-cpu/checkpoint.pt [--data ../shared/data/mnist]
    python benchmarks/mnist_morph.py --zoo mnist
    python benchmarks/mnist_morph.py --zoo mnist-digit-2 --digits 2

Prints one JSON object:
- ``on_stroke``: the share of (digit, landmark) pairs whose landmark lies on
  ink (the image, bilinearly sampled at the landmark, >= ``--ink``), and
  ``on_stroke_per_landmark`` (the worst landmark is what "every landmark on
  the strokes" asks about);
- ``on_stroke_frame_fixed``: the same for the control of points that never
  move (each landmark's mean position in every image);
- ``map_mass_pixels`` and ``map_std_pixels``: per landmark, the pixels of
  the padded frame its confidence map holds (:func:`lmdis.evaluate.map_mass`)
  and its spread (root mean per-axis variance, Eq. 3): a blob that owns the
  digit's box holds hundreds of pixels and spreads 10 px, a point tens and 3 px;
- ``classifier_accuracy``: a logistic regression fitted on the 5,000
  embedded digits, on the real test digits (the ceiling of the next figure);
- ``reconstruction_accuracy``: the same classifier on the model's
  reconstructions; a morph's endpoints (t = 0, 1 of
  :func:`lmdis.manipulation.morph_sequence`) are these reconstructions, so
  this is the share of morph endpoints decoded as their own digit;
- ``morph_endpoints``: that share over ``--pairs`` random pairs of different
  digits, both endpoints counted.

Test digits: the MNIST test set (10,000) when ``--data`` or the shared data
folder has it, else the embedded digits (which the model may have trained on;
the output says which). ``--digits`` keeps only those labels (a model of one
digit, Appendix B.1); with a single digit there are no pairs to morph and
``morph_endpoints`` is null.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from lmdis.data import MNISTDataset, open_dataset, shared_data_root
from lmdis.evaluate import PixelClassifier, frame_fixed, map_mass, on_stroke
from lmdis.manipulation import morph_sequence

SHARED_MNIST = (shared_data_root() or Path("/nonexistent")) / "mnist"


def load_model(args):
    if args.zoo:
        from lmdis.zoo import load_pretrained
        return load_pretrained(args.zoo)
    from lmdis.checkpoint import model_from_checkpoint
    return model_from_checkpoint(args.checkpoint)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint")
    source.add_argument("--zoo", help="a name from lmdis.zoo.available()")
    parser.add_argument("--data", help="folder with the MNIST test IDX files (default: the shared data folder)")
    parser.add_argument("--images", type=int, default=2000, help="test digits to score (the first N)")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--ink", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--digits", type=int, nargs="+", help="score only test digits with these labels")
    args = parser.parse_args()

    model, config = load_model(args)
    model = model.cpu().eval()
    embedded = open_dataset("mnist-embedded", image_size=config.model.image_size)
    classifier = PixelClassifier.from_dataset(embedded)

    root = Path(args.data) if args.data else SHARED_MNIST
    if (root / "t10k-images-idx3-ubyte.gz").is_file():
        test = MNISTDataset.from_idx(root / "t10k-images-idx3-ubyte.gz", root / "t10k-labels-idx1-ubyte.gz")
        test_source = "MNIST test set (t10k)"
    else:
        test, test_source = embedded, "embedded digits (the model may have trained on them)"
    kept = np.flatnonzero(np.isin(test.labels, args.digits)) if args.digits else np.arange(len(test.labels))
    count = min(args.images, len(kept))
    images = torch.from_numpy(test.images[kept[:count]]).float()[:, None] / 255.0  # (N, 1, 28, 28)
    labels = test.labels[kept[:count]]

    with torch.no_grad():
        landmarks, descriptors, detection = model.encode(images)
        reconstructions = model.decode(landmarks, descriptors)
    share, per_landmark = on_stroke(images, landmarks, args.ink)
    control, _ = on_stroke(images, frame_fixed(landmarks), args.ink)
    predict = classifier.predict

    generator = np.random.default_rng(args.seed)
    hits, pairs = 0, args.pairs if len(np.unique(labels)) > 1 else 0
    for _ in range(pairs):
        first = int(generator.integers(count))
        second = int(generator.choice(np.flatnonzero(labels != labels[first])))
        sequence, _ = morph_sequence(model, images[first], images[second], count=2)
        predicted = predict(sequence)
        hits += int(predicted[0] == labels[first]) + int(predicted[-1] == labels[second])

    print(json.dumps({
        "test_digits": test_source, "n": count, "K": config.model.num_landmarks,
        "on_stroke": round(share, 3),
        "on_stroke_per_landmark": [round(float(v), 3) for v in per_landmark],
        "on_stroke_frame_fixed": round(control, 3),
        # pixels of the padded frame each landmark's map holds, and its spread
        "map_mass_pixels": [round(float(v)) for v in map_mass(detection.maps)[:-1]],
        "map_std_pixels": [round(float(v), 1) for v in
                           detection.variances.mean(dim=(0, 2)).sqrt() * config.model.padded_size],
        "classifier_accuracy": round(float((predict(images) == labels).mean()), 3),
        "reconstruction_accuracy": round(float((predict(reconstructions) == labels).mean()), 3),
        "morph_endpoints": round(hits / (2 * pairs), 3) if pairs else None, "pairs": pairs,
        **({"digits": args.digits} if args.digits else {}),
    }))


if __name__ == "__main__":
    main()
