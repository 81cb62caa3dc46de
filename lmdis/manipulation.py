"""Editing images through their landmarks (Sec. 4.4, Figure 10; Appendix B.3, Figures 20-21).

The decoder of Eq. (11)-(14) renders an image from landmarks (and, when the
model has them, their descriptors), so moving landmarks reshapes the image
and interpolating the landmarks of two images morphs one into the other. The
callbacks of the interactive panels are the pure functions at the top;
:class:`ManipulationPanel` and :class:`MorphingPanel` only wire them to
ipywidgets (imported when a panel is built), so pytest can drive a panel by
setting slider values and reading the PNG bytes of its ``output`` image.

Convention: landmarks are normalised ``(x, y)`` in the unpadded image's frame
(see :mod:`lmdis.geometry`); offsets are fractions of the image side.
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from lmdis.plotting import landmark_colours

__all__ = ["move_landmarks", "interpolate", "encode_image", "decode_with_landmarks", "render_png", "morph_sequence",
           "descriptor_swap", "ManipulationPanel", "MorphingPanel"]


def move_landmarks(landmarks: torch.Tensor, index: int | Sequence[int], dx: float, dy: float) -> torch.Tensor:
    """A copy of ``landmarks`` with the chosen one(s) shifted by ``(dx, dy)``.

    Args:
        landmarks: (..., K, 2) normalised (x, y).
        index: one landmark (0-based) or several.
        dx, dy: the shift, fractions of the image side (x right, y down).
    Returns:
        (..., K, 2); the other landmarks are unchanged.
    """
    indices = [index] if isinstance(index, (int, np.integer)) else [int(i) for i in index]
    count = landmarks.shape[-2]
    outside = [i for i in indices if not 0 <= i < count]
    if outside:
        raise IndexError(f"landmark indices {outside} out of range for {count} landmarks (0..{count - 1})")
    moved = landmarks.clone()
    moved[..., indices, :] += landmarks.new_tensor([dx, dy])
    return moved


def interpolate(start: torch.Tensor | None, end: torch.Tensor | None, t: float) -> torch.Tensor | None:
    """``(1 - t) start + t end``, exactly ``start`` at 0 and ``end`` at 1.

    Works for landmarks and descriptors alike; two ``None`` (a model without
    descriptors, Appendix B) give ``None``.
    """
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise ValueError("interpolate needs both ends or neither (None for a model without descriptors)")
    if start.shape != end.shape:
        raise ValueError(f"cannot interpolate between shapes {tuple(start.shape)} and {tuple(end.shape)}")
    return torch.lerp(start, end, float(t))


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_image(model, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Landmarks (K, 2) in the image frame and descriptors (K+1, C) or None of one image (C, S, S)."""
    encoding = model.eval().encode(image[None].to(_model_device(model)))
    descriptors = encoding.descriptors
    return encoding.landmarks[0].cpu(), None if descriptors is None else descriptors[0].cpu()


@torch.no_grad()
def decode_with_landmarks(model, landmarks: torch.Tensor, descriptors: torch.Tensor | None = None) -> torch.Tensor:
    """The decoder's image for (possibly edited) landmarks, in eval mode, on the CPU.

    Args:
        landmarks: (K, 2) or (B, K, 2) in the image frame.
        descriptors: (K+1, C) or (B, K+1, C) for a model with descriptors, else None.
    Returns:
        (C, S, S) or (B, C, S, S) in (0, 1), matching the landmarks' batching.
    """
    single = landmarks.dim() == 2
    if single:
        landmarks = landmarks[None]
        descriptors = None if descriptors is None else descriptors[None]
    device = _model_device(model)
    images = model.eval().decode(landmarks.to(device), None if descriptors is None else descriptors.to(device)).cpu()
    return images[0] if single else images


def render_png(image: torch.Tensor, landmarks: torch.Tensor | None = None, original: torch.Tensor | None = None,
               scale: int = 8) -> bytes:
    """PNG bytes of ``image`` enlarged ``scale`` times, with its landmarks (Figure 10 style).

    Args:
        image: (C, S, S) in [0, 1].
        landmarks: (K, 2) drawn as dots in each landmark's colour.
        original: (K, 2) where the landmarks were: grey dots, with grey lines
            to the new positions.
    """
    array = (image.detach().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    array = np.repeat(array, 3, axis=0) if array.shape[0] == 1 else array
    picture = Image.fromarray(array.transpose(1, 2, 0)).resize(
        (array.shape[2] * scale, array.shape[1] * scale), Image.NEAREST)
    draw = ImageDraw.Draw(picture)
    width, height = picture.size
    radius = max(2, scale // 2)

    def pixel(point):
        return float(point[0]) * width, float(point[1]) * height

    if original is not None and landmarks is not None:
        for before, after in zip(original, landmarks):
            draw.line([pixel(before), pixel(after)], fill=(160, 160, 160), width=max(1, scale // 4))
            x, y = pixel(before)
            draw.ellipse([x - radius / 2, y - radius / 2, x + radius / 2, y + radius / 2], fill=(160, 160, 160))
    if landmarks is not None:
        colours = (landmark_colours(len(landmarks))[:, :3] * 255).round().astype(int)
        for point, colour in zip(landmarks, colours):
            x, y = pixel(point)
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=tuple(colour), outline=(255, 255, 255))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@torch.no_grad()
def morph_sequence(model, source: torch.Tensor, target: torch.Tensor, count: int = 8):
    """Decode ``count`` evenly spaced interpolations from ``source`` to ``target`` (Figures 20-21).

    Landmarks (and descriptors, when the model has them) are interpolated
    linearly; t = 0 and t = 1 give the two reconstructions.

    Args:
        source, target: images (C, S, S).
    Returns:
        images (count, C, S, S) and their landmarks (count, K, 2).
    """
    start_landmarks, start_descriptors = encode_image(model, source)
    end_landmarks, end_descriptors = encode_image(model, target)
    steps = torch.linspace(0, 1, count).tolist()
    landmarks = torch.stack([interpolate(start_landmarks, end_landmarks, t) for t in steps])
    descriptors = None
    if start_descriptors is not None:
        descriptors = torch.stack([interpolate(start_descriptors, end_descriptors, t) for t in steps])
    return decode_with_landmarks(model, landmarks, descriptors), landmarks


@torch.no_grad()
def descriptor_swap(model, images: torch.Tensor) -> torch.Tensor:
    """Every image's landmarks decoded with every image's descriptors (the shape/appearance split of Sec. 3.2).

    Args:
        images: (N, C, S, S) in [0, 1].
    Returns:
        (N, N, C, S, S): entry [i, j] is decoded from the landmarks of image i
        and the descriptors of image j, so the diagonal holds the
        reconstructions. A row keeps one geometry, a column one appearance.
    Raises:
        ValueError: a model without descriptors (its landmarks are all it has).
    """
    encodings = [encode_image(model, image) for image in images]
    if encodings[0][1] is None:
        raise ValueError("descriptor_swap needs a model with descriptors (ModelConfig.use_descriptors=True); "
                         "this model decodes from landmarks alone")
    landmarks = torch.stack([landmark for landmark, _ in encodings])          # (N, K, 2)
    descriptors = torch.stack([descriptor for _, descriptor in encodings])    # (N, K+1, C)
    count = len(images)
    decoded = decode_with_landmarks(model, landmarks.repeat_interleave(count, dim=0), descriptors.repeat(count, 1, 1))
    return decoded.reshape(count, count, *decoded.shape[1:])


class ManipulationPanel:
    """Sliders that move landmarks of one image; the decoded image follows live (Figure 10).

    Every landmark k has its own offset sliders ``sliders["dx{k}"]``,
    ``sliders["dy{k}"]`` (k from 1, as in the figures); ``sliders["dx"]``,
    ``sliders["dy"]`` move all the landmarks ticked in ``selector`` together,
    on top of their own offsets. ``output`` is an ``ipywidgets.Image`` whose
    ``value`` holds the PNG of the decoded image (new landmarks in colour,
    original ones grey); ``input`` shows the image with its detected
    landmarks; ``widget`` is the whole panel to display. Descriptors, when the
    model has them, stay those of the image.

    Args:
        model: a trained :class:`~lmdis.model.LandmarkAutoencoder`.
        image: (C, S, S) in [0, 1].
        limit: the sliders' range, +-``limit`` of the image side.
        scale: enlargement of the displayed images.
        continuous_update: decode while a slider is dragged (cheap for small models).
    """

    def __init__(self, model, image: torch.Tensor, limit: float = 0.3, scale: int = 8,
                 continuous_update: bool = True):
        import ipywidgets as widgets

        self.model, self.scale = model, scale
        self.original, self.descriptors = encode_image(model, image)
        count = len(self.original)

        def slider(description):
            return widgets.FloatSlider(value=0.0, min=-limit, max=limit, step=0.01, description=description,
                                       continuous_update=continuous_update, readout_format=".2f",
                                       layout=widgets.Layout(width="260px"),
                                       style={"description_width": "40px"})

        self.sliders = {}
        for k in range(1, count + 1):
            self.sliders[f"dx{k}"] = slider(f"x {k}")
            self.sliders[f"dy{k}"] = slider(f"y {k}")
        self.sliders["dx"] = slider("x sel.")
        self.sliders["dy"] = slider("y sel.")
        for name, control in self.sliders.items():
            control.add_class(f"lmdis-slider-{name}")  # stable CSS hooks for browser tests
        self.selector = widgets.SelectMultiple(options=[(f"landmark {k}", k - 1) for k in range(1, count + 1)],
                                               value=(), rows=min(count, 10), description="move:")
        self.reset_button = widgets.Button(description="reset")
        reconstruction = decode_with_landmarks(model, self.original, self.descriptors)
        self.input = widgets.Image(value=render_png(image, self.original, scale=scale), format="png")
        self.output = widgets.Image(value=render_png(reconstruction, self.original, scale=scale), format="png")
        self.output.add_class("lmdis-manipulation-output")
        for control in [*self.sliders.values(), self.selector]:
            control.observe(self._update, names="value")
        self.reset_button.on_click(lambda _: self.reset())
        rows = [widgets.HBox([self.sliders[f"dx{k}"], self.sliders[f"dy{k}"]]) for k in range(1, count + 1)]
        group = widgets.VBox([self.selector, self.sliders["dx"], self.sliders["dy"], self.reset_button])
        pictures = widgets.HBox([widgets.VBox([widgets.Label("input, detected landmarks"), self.input]),
                                 widgets.VBox([widgets.Label("decoded from the moved landmarks"), self.output])])
        self.widget = widgets.VBox([pictures, widgets.HBox([widgets.VBox(rows), group])])

    def landmarks(self) -> torch.Tensor:
        """The landmarks the sliders describe: (K, 2) in the image frame."""
        landmarks = self.original
        for k in range(len(self.original)):
            landmarks = move_landmarks(landmarks, k, self.sliders[f"dx{k + 1}"].value,
                                       self.sliders[f"dy{k + 1}"].value)
        if self.selector.value:
            landmarks = move_landmarks(landmarks, list(self.selector.value), self.sliders["dx"].value,
                                       self.sliders["dy"].value)
        return landmarks

    def _update(self, change=None) -> None:
        landmarks = self.landmarks()
        decoded = decode_with_landmarks(self.model, landmarks, self.descriptors)
        self.output.value = render_png(decoded, landmarks, original=self.original, scale=self.scale)

    def reset(self) -> None:
        """All offsets back to zero (one redraw)."""
        for control in self.sliders.values():
            control.unobserve(self._update, names="value")
            control.value = 0.0
            control.observe(self._update, names="value")
        self._update()


class MorphingPanel:
    """One slider ``sliders["t"]`` interpolating the landmarks (and descriptors) of two images.

    t = 0 decodes the source's landmarks, t = 1 the target's (Appendix B.3).
    ``output`` is an ``ipywidgets.Image`` with the PNG of the decoded image;
    ``widget`` shows the two inputs beside it.

    Args:
        model: a trained :class:`~lmdis.model.LandmarkAutoencoder`.
        source, target: images (C, S, S) in [0, 1].
    """

    def __init__(self, model, source: torch.Tensor, target: torch.Tensor, scale: int = 8,
                 continuous_update: bool = True):
        import ipywidgets as widgets

        self.model, self.scale = model, scale
        self.start, self.start_descriptors = encode_image(model, source)
        self.end, self.end_descriptors = encode_image(model, target)
        self.sliders = {"t": widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="t",
                                                 continuous_update=continuous_update,
                                                 layout=widgets.Layout(width="420px"))}
        self.output = widgets.Image(format="png")
        self.output.add_class("lmdis-morphing-output")
        self.sliders["t"].add_class("lmdis-slider-t")
        self.sliders["t"].observe(self._update, names="value")
        self._update()
        inputs = [widgets.VBox([widgets.Label(label), widgets.Image(value=render_png(image, scale=scale),
                                                                      format="png")])
                  for label, image in (("source", source), ("target", target))]
        self.widget = widgets.VBox([widgets.HBox([inputs[0], widgets.VBox([widgets.Label("decoded"), self.output]),
                                                  inputs[1]]), self.sliders["t"]])

    def landmarks(self) -> torch.Tensor:
        return interpolate(self.start, self.end, self.sliders["t"].value)

    def _update(self, change=None) -> None:
        t = self.sliders["t"].value
        landmarks = self.landmarks()
        decoded = decode_with_landmarks(self.model, landmarks,
                                        interpolate(self.start_descriptors, self.end_descriptors, t))
        self.output.value = render_png(decoded, landmarks, scale=self.scale)
