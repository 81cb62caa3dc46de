"""Three pictures of a zoo face model at work on the public-domain astronaut photograph.

    python tools/face_examples.py --out outputs/faces [--model faces]

Writes ``landmarks.png`` (the discovered landmarks on the aligned crop),
``reconstruction.png`` (input and the decoder's image from the landmarks and
descriptors, Eq. 11-14) and ``edit.png`` (the lowest two landmarks moved apart
and decoded with the same descriptors, Figure 10) under ``--out``, and prints
their paths with the reconstruction's mean squared error. The photograph is
``skimage.data.astronaut()`` (public domain), aligned on
:data:`lmdis.data.ASTRONAUT_EYES`; no MTFL face is drawn.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import skimage.data  # noqa: E402

from lmdis.data import ASTRONAUT_EYES, aligned_face_crop  # noqa: E402
from lmdis.manipulation import decode_with_landmarks, encode_image, move_landmarks  # noqa: E402
from lmdis.plotting import manipulation_figure, show_landmarks  # noqa: E402
from lmdis.zoo import load_pretrained  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for the three PNG files")
    parser.add_argument("--model", default="faces", help="lmdis.zoo face model")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model, config = load_pretrained(args.model)
    image = aligned_face_crop(skimage.data.astronaut(), ASTRONAUT_EYES, size=config.model.image_size)
    landmarks, descriptors = encode_image(model, image)
    reconstruction = decode_with_landmarks(model, landmarks, descriptors)
    paths = {}

    def save(name, figure):
        paths[name] = out / f"{name}.png"
        figure.savefig(paths[name], dpi=120, bbox_inches="tight")
        plt.close(figure)

    figure, ax = plt.subplots(figsize=(4, 4))
    show_landmarks(image, landmarks, ax=ax, size=120)
    ax.set_title(f"{len(landmarks)} discovered landmarks ({args.model})", fontsize=10)
    save("landmarks", figure)
    figure, axes = plt.subplots(1, 2, figsize=(6.4, 3.4))
    for ax, shown, title in zip(axes, (image, reconstruction), ("input", "reconstruction (Eq. 14)")):
        show_landmarks(shown, landmarks, ax=ax, size=70)
        ax.set_title(title, fontsize=10)
    save("reconstruction", figure)

    order = landmarks[:, 1].argsort()
    left, right = sorted(order[-2:].tolist(), key=lambda k: landmarks[k, 0].item())
    edited = move_landmarks(move_landmarks(landmarks, left, -0.06, 0.0), right, 0.06, 0.0)
    edits = {"lowest two landmarks apart": (edited, decode_with_landmarks(model, edited, descriptors))}
    save("edit", manipulation_figure(image, landmarks, reconstruction, edits, panel_inches=2.6))

    error = float(((reconstruction - image) ** 2).mean())
    print(json.dumps({"model": args.model, "reconstruction_mse": round(error, 4),
                      **{name: str(path) for name, path in paths.items()}}, indent=1))


if __name__ == "__main__":
    main()
