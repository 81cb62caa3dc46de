"""Figures: landmarks drawn on images, one colour per landmark (Figure 2, 19 style), regressed
annotated landmarks coloured by their error (Figure 9 style), confidence maps (Figure 39 style), and
the model of Figure 1 with its tensor shapes and its hourglasses' levels (Figure 40), drawn from the
shapes :func:`lmdis.model.pipeline_shapes` reads off a forward pass.

Every function takes an optional ``ax`` (or writes a whole figure) and returns
the figure. Landmarks come in the package convention (normalised ``(x, y)``,
see :mod:`lmdis.geometry`) and are drawn at pixel centres. Figures draw
tensors and arrays: a model enters only as something to call ``detect`` on,
so the module needs nothing of lmdis beyond the data's image helpers, and
evaluation can draw with it. matplotlib is imported inside the functions:
the command line and the evaluation import this module, and only drawing a
figure needs matplotlib.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lmdis.data import centre_crop, collate_images


def landmark_colours(count: int) -> np.ndarray:
    """``count`` distinct RGBA colours, the same for landmark k in every figure."""
    from matplotlib import colormaps

    return colormaps["tab10" if count <= 10 else "tab20"](np.arange(count) % (10 if count <= 10 else 20))


def _to_numpy(values) -> np.ndarray:
    """A tensor (any device, with grad) or array-like as numpy, its axes as given."""
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def _to_numpy_points(points) -> np.ndarray:
    """(..., 2) landmarks from a tensor (any device, with grad) or array-like, as float64 numpy."""
    return _to_numpy(points).astype(np.float64, copy=False)


def _to_numpy_image(image) -> np.ndarray:
    """(H, W) or (H, W, C) numpy for imshow: tensors are (C, H, W), numpy arrays (H, W, C)
    unless their last axis cannot be channels."""
    channels_first = isinstance(image, torch.Tensor) or (np.ndim(image) == 3 and np.shape(image)[-1] not in (1, 3, 4))
    image = _to_numpy(image)
    if image.ndim == 3 and channels_first and image.shape[0] in (1, 3):
        image = image.transpose(1, 2, 0)
    return image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image


def show_landmarks(image, landmarks, ax=None, marker: str = "x", size: float = 40):
    """Draw ``landmarks`` (K, 2) on ``image`` (C, H, W) or (H, W[, C]); returns the figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    picture = _to_numpy_image(image)
    height, width = picture.shape[:2]
    points = _to_numpy_points(landmarks)
    ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1,
              extent=(0, width, height, 0), interpolation="nearest")
    ax.scatter(points[:, 0] * width, points[:, 1] * height, c=landmark_colours(len(points)),
               marker=marker, s=size, linewidths=2)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    return ax.figure


def landmark_grid(images, landmarks, columns: int = 8, path: str | Path | None = None, title: str | None = None):
    """A grid of images with their landmarks; saved to ``path`` when given."""
    import matplotlib.pyplot as plt

    count = len(images)
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.6 * rows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index < count:
            show_landmarks(images[index], landmarks[index], ax=ax, size=18)
        else:
            ax.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=100)
        plt.close(figure)
    return figure


def regression_figure(images, discovered, annotated, predicted, errors, columns: int = 4,
                      path: str | Path | None = None, title: str | None = None, max_error: float | None = None,
                      error_label: str = "error (%)", panel_inches: float = 2.2, dpi: int = 100,
                      colour_map: str = "jet"):
    """Prediction of annotated landmarks, as in Figure 9 (and 22).

    Per image: coloured crosses = discovered landmarks (one colour per
    landmark, as everywhere), red dots = annotated points, circles = regressed
    points coloured by their error (one colour bar for the whole figure,
    blue = small).

    Args:
        images: n images (C, H, W) or (H, W[, C]).
        discovered: (n, K, 2); annotated, predicted: (n, M, 2), normalised.
        errors: (n, M) normalised point errors (fractions, e.g. of the
            inter-ocular distance); shown in % on the colour bar.
        max_error: top of the colour scale in % (default: the largest shown).
        panel_inches, dpi: the figure is ``panel_inches * (columns + 0.5)``
            by ``panel_inches * rows`` inches, saved at ``dpi``.
    Returns:
        the figure (closed after saving when ``path`` is given).
    """
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    count = len(images)
    if not (len(discovered) == len(annotated) == len(predicted) == len(errors) == count):
        raise ValueError(f"regression_figure needs one entry per image: {count} images, {len(discovered)} "
                         f"discovered, {len(annotated)} annotated, {len(predicted)} predicted, {len(errors)} errors")
    percent = 100 * np.asarray(errors, np.float64)  # (n, M)
    annotated, predicted = np.asarray(annotated), np.asarray(predicted)
    if percent.shape != predicted.shape[:2] or annotated.shape != predicted.shape:
        raise ValueError(f"annotated {annotated.shape}, predicted {predicted.shape} and errors {percent.shape} "
                         f"must be (n, M, 2), (n, M, 2) and (n, M)")
    scale = Normalize(0, max_error if max_error is not None else max(float(percent.max(initial=0)), 1e-9))
    colours = plt.get_cmap(colour_map)
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, squeeze=False,
                                figsize=(panel_inches * (columns + 0.5), panel_inches * rows))
    for index, ax in enumerate(axes.flat):
        if index >= count:
            ax.axis("off")
            continue
        show_landmarks(images[index], discovered[index], ax=ax, size=30)
        height, width = _to_numpy_image(images[index]).shape[:2]
        ax.scatter(annotated[index, :, 0] * width, annotated[index, :, 1] * height, c="red", s=10, zorder=3)
        ax.scatter(predicted[index, :, 0] * width, predicted[index, :, 1] * height, s=45, facecolors="none",
                   edgecolors=colours(scale(percent[index])), linewidths=1.5, zorder=4)
        ax.set_title(f"{percent[index].mean():.1f}", fontsize=8)
    figure.colorbar(ScalarMappable(scale, colours), ax=axes.ravel().tolist(), fraction=0.04, pad=0.02,
                    label=error_label)
    if title:
        figure.suptitle(title)
    if path is not None:
        figure.savefig(path, dpi=dpi)
        plt.close(figure)
    return figure


def show_confidence_maps(maps, landmarks=None, ax=None, normalise: bool = True):
    """Draw the channels of one image's confidence map, channel k in landmark k's colour.

    With ``normalise`` each channel is scaled to its own maximum, so a peaked
    channel shows as a bright spot and a flat one as a faint wash; without,
    the values (in [0, 1], e.g. softmax maps) are drawn as they are. The
    colours are added.

    Args:
        maps: (K, H, W) non-negative maps of ONE image; pass ``D[b, :K]`` to
            leave out the background channel (Eq. 2).
        landmarks: optional (K, 2) normalised (x, y), drawn as dots in the
            landmark colours with a white rim (a plain cross would vanish
            into its own channel's colour).
    Returns:
        the figure.
    """
    values = _to_numpy(maps)
    if values.ndim != 3:
        raise ValueError(f"maps must be (K, H, W) for one image, got shape {values.shape}")
    if normalise:
        values = values / values.reshape(len(values), -1).max(axis=1).clip(min=1e-12)[:, None, None]
    colours = landmark_colours(len(values))                                          # (K, 4)
    picture = np.einsum("khw,kc->hwc", values, colours[:, :3])                       # (H, W, 3)
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(3, 3))
    show_landmarks(picture.clip(0, 1), np.zeros((0, 2)), ax=ax)
    if landmarks is not None:
        points = _to_numpy_points(landmarks)
        height, width = values.shape[1:]
        ax.scatter(points[:, 0] * width, points[:, 1] * height, c=colours[: len(points)], s=30,
                   edgecolors="white", linewidths=1)
    return ax.figure


def draw_outlined_landmarks(ax, landmarks, width: float, height: float, size: float = 60, marker: str = "o"):
    """Scatter (K, 2) normalised landmarks in their colours, each with a black rim and a white halo.

    The rim keeps a marker visible on white strokes, the colour on a black
    background, at the 70-100 dpi of committed notebooks.
    """
    from matplotlib import patheffects

    points = _to_numpy_points(landmarks)
    ax.scatter(points[:, 0] * width, points[:, 1] * height, c=landmark_colours(len(points)), marker=marker, s=size,
               edgecolors="black", linewidths=1.2, zorder=3,
               path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")])


def confidence_map_figure(images: torch.Tensor, rows: dict[str, torch.Tensor], landmarks: dict[str, torch.Tensor],
                          image_size: int, padded_size: int, index: int = 0, notes: dict[str, str] | None = None,
                          panel_inches: float = 1.3):
    """Figure 39: one row per training stage, one column per channel of D, then the landmarks.

    Args:
        images: (B, C, S, S) the recorded images.
        rows: label -> maps (B, K+1, P, P); the background channel is drawn last.
        landmarks: label -> (B, K, 2) in the image frame, drawn outlined
            (:func:`draw_outlined_landmarks`).
        index: which image of the batch to draw.
        notes: label -> a short text written beside the row's landmarks
            (e.g. their spread).
        panel_inches: the side of each panel.
    Returns:
        the figure. Each map is scaled to its own maximum; the dashed square
        marks the unpadded image inside the padded frame.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    labels = list(rows)
    channels = next(iter(rows.values())).shape[1]
    extra = 1.2 if notes else 0.0
    figure, axes = plt.subplots(len(labels), channels + 1, squeeze=False,
                                figsize=(panel_inches * (channels + 1) + extra, (panel_inches + 0.1) * len(labels)))
    colours = landmark_colours(channels - 1)
    margin = (padded_size - image_size) / 2
    for row, label in enumerate(labels):
        maps = _to_numpy(rows[label][index])                               # (K+1, P, P)
        for channel in range(channels):
            ax = axes[row, channel]
            ax.imshow(maps[channel], cmap="viridis", vmin=0, vmax=float(maps[channel].max()))
            ax.add_patch(Rectangle((margin - 0.5, margin - 0.5), image_size, image_size, fill=False,
                                   linestyle="--", linewidth=0.6, edgecolor="white"))
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(colours[channel] if channel < channels - 1 else "black")
                spine.set_linewidth(2)
            if row == 0:
                ax.set_title(f"{channel + 1}" if channel < channels - 1 else "bg", fontsize=9)
        axes[row, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        show_landmarks(images[index], np.zeros((0, 2)), ax=axes[row, -1])
        side = images.shape[-1]
        draw_outlined_landmarks(axes[row, -1], landmarks[label][index], side, side, size=45)
        if notes and label in notes:
            axes[row, -1].text(1.08, 0.5, notes[label], transform=axes[row, -1].transAxes, ha="left", va="center",
                               fontsize=9)
    axes[0, -1].set_title("landmarks", fontsize=9)
    figure.tight_layout()
    return figure


def landmark_rows_figure(images, rows: dict, panel_inches: float = 1.25, size: float = 55):
    """The same images under several models: one row per model (label -> (N, K, 2) landmarks), one column per image.

    Landmarks are drawn outlined (:func:`draw_outlined_landmarks`), landmark
    k in the same colour in every row, so rows can be compared point by
    point, as in the paper's ablation figures.
    """
    import matplotlib.pyplot as plt

    labels = list(rows)
    count = len(images)
    for label in labels:
        if len(rows[label]) != count:
            raise ValueError(f"row {label!r} has landmarks for {len(rows[label])} images, expected {count}")
    figure, axes = plt.subplots(len(labels), count, squeeze=False,
                                figsize=(panel_inches * count + 1.2, panel_inches * len(labels)))
    for row, label in enumerate(labels):
        for column in range(count):
            ax = axes[row, column]
            show_landmarks(images[column], np.zeros((0, 2)), ax=ax)
            height, width = _to_numpy_image(images[column]).shape[:2]
            draw_outlined_landmarks(ax, rows[label][column], width, height, size=size)
        axes[row, 0].text(-0.08, 0.5, label, transform=axes[row, 0].transAxes, ha="right", va="center", fontsize=10)
    figure.tight_layout()
    return figure


def seed_bar_figure(summaries: dict, measurements: dict[str, str], titles: dict[str, str] | None = None,
                    colours=None, panel_inches: tuple[float, float] = (3.3, 3.0)):
    """Runs repeated over seeds: per measurement, the mean as a bar, +-1 std as an error bar, each seed a dot.

    Args:
        summaries: label -> :func:`lmdis.evaluate.seeds.seed_summary` of that run's seeds.
        measurements: key -> the y-axis label, with its unit; one panel each.
        titles: key -> panel title (default: none).
        colours: one bar colour per label (default: grey).
    Returns:
        the figure.
    """
    import matplotlib.pyplot as plt

    labels = list(summaries)
    colours = list(colours) if colours is not None else ["0.6"] * len(labels)
    width, height = panel_inches
    figure, axes = plt.subplots(1, len(measurements), figsize=(width * len(measurements), height), squeeze=False)
    positions = np.arange(len(labels))
    for ax, (key, axis_label) in zip(axes[0], measurements.items()):
        means = [summaries[label][key]["mean"] for label in labels]
        spreads = [summaries[label][key]["std"] for label in labels]
        ax.bar(positions, means, yerr=spreads, color=colours, capsize=4, error_kw={"linewidth": 1.5})
        for position, label in zip(positions, labels):
            values = summaries[label][key]["values"]
            offsets = np.linspace(-0.18, 0.18, len(values)) if len(values) > 1 else [0.0]
            ax.scatter(position + np.asarray(offsets), values, s=22, color="black", edgecolors="white",
                       linewidths=0.8, zorder=3)
        ax.set_xticks(positions, labels, rotation=40, ha="right")
        ax.set_ylabel(axis_label)
        if titles and key in titles:
            ax.set_title(titles[key], fontsize=10)
    figure.tight_layout()
    return figure


def training_curves_figure(steps, curves: dict[str, dict], ylabels: dict[str, str], log_scale=(),
                           panel_inches: tuple[float, float] = (4.8, 3.2)):
    """Measurements recorded during training: one panel per measurement, one line per run, against the step.

    Args:
        steps: the recorded steps.
        curves: panel title -> {run label -> one value per step}.
        ylabels: panel title -> y-axis label with its unit.
        log_scale: titles of the panels drawn with a logarithmic y axis.
    Returns:
        the figure.
    """
    import matplotlib.pyplot as plt

    width, height = panel_inches
    figure, axes = plt.subplots(1, len(curves), figsize=(width * len(curves), height), squeeze=False)
    for ax, (title, runs) in zip(axes[0], curves.items()):
        for label, values in runs.items():
            if len(values) != len(steps):
                raise ValueError(f"{title!r}: {label!r} has {len(values)} values for {len(steps)} steps")
            ax.plot(steps, values, marker="o", markersize=3, label=label)
        ax.set(xlabel="training step", ylabel=ylabels[title], title=title)
        if title in log_scale:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def time_to_quality_figure(runs: dict, floor: float | None = None, panel_inches: tuple[float, float] = (4.6, 3.3)):
    """Test NME against training minutes (left) and against images seen (right), one line per run.

    Args:
        runs: label -> the evaluation dicts of one run (``train_minutes``,
            ``images_seen``, ``nme_percent``, ``seconds_per_step``), e.g.
            :func:`lmdis.evaluate.read_progress`'s ``points``. The legend gives
            each run's range of seconds per step: minutes compare machines
            only with it.
        floor: the mean-shape NME (%), drawn dashed.
    Returns:
        the figure.
    """
    import matplotlib.pyplot as plt

    width, height = panel_inches
    figure, axes = plt.subplots(1, 2, figsize=(2 * width, height), sharey=True)
    for label, points in runs.items():
        if not points:
            raise ValueError(f"run {label!r} has no evaluation to draw")
        nme = [point["nme_percent"] for point in points]
        rates = [point["seconds_per_step"] for point in points]
        legend = f"{label} ({min(rates):.2f}-{max(rates):.2f} s/step)"
        line, = axes[0].plot([point["train_minutes"] for point in points], nme, marker="o", markersize=3,
                             label=legend)
        axes[1].plot([point["images_seen"] / 1000 for point in points], nme, marker="o", markersize=3,
                     color=line.get_color(), label=label)
    for ax, xlabel in zip(axes, ("training minutes (evaluation excluded)", "images seen (thousands)")):
        if floor is not None:
            ax.axhline(floor, color="tab:red", linestyle="--", linewidth=1, label=f"mean shape ({floor:.1f} %)")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test NME (% inter-ocular)")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    return figure


def save_landmark_figure(model, dataset, path: str | Path, count: int = 16) -> Path:
    """The landmarks a model finds on ``count`` evenly spaced items of ``dataset``, as a grid saved to ``path``.

    Args:
        model: a :class:`~lmdis.model.LandmarkAutoencoder` (put in eval mode).
        dataset: items with ``"image"``; images loaded larger for the warp
            context (``train.warp_context``) are shown as the model sees them.
    Returns:
        ``path``.
    """
    # Evenly spaced items: sorted data sets (MNIST by digit) show their variety.
    indices = torch.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().long().tolist()
    # Loaded with train.warp_context the images are larger: show the training view.
    images = centre_crop(collate_images([dataset[i] for i in indices]), model.config.image_size)
    with torch.no_grad():
        landmarks = model.eval().detect(images.to(next(model.parameters()).device)).cpu()
    landmark_grid(images, landmarks, path=path, title="discovered landmarks")
    return path


# --------------------------------------------------------------------------- aggregate pictures

def covariance_ellipse(covariance, n_std: float = 1.0) -> tuple[float, float, float]:
    """(width, height, angle in degrees) of the ``n_std`` contour of a 2-D Gaussian with ``covariance``.

    The axes are ``2 n_std sqrt(eigenvalue)`` along the eigenvectors; the
    angle is that of the first axis from +x, as matplotlib's ``Ellipse``
    takes it. In image axes (y down) the angle turns clockwise on screen.
    """
    covariance = np.asarray(covariance, np.float64)
    if covariance.shape != (2, 2):
        raise ValueError(f"covariance must be 2x2, got shape {covariance.shape}")
    values, vectors = np.linalg.eigh(covariance)
    values = np.clip(values, 0, None)
    angle = float(np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1])))
    return 2 * n_std * float(np.sqrt(values[1])), 2 * n_std * float(np.sqrt(values[0])), angle


def aggregate_figure(mean_image, landmark_mean, landmark_cov, annotated_mean=None, annotated_cov=None, ax=None,
                     title: str | None = None, n_std: float = 1.0):
    """Landmarks and annotations on the mean of many aligned images, each with its spread.

    Crosses: each discovered landmark's mean position, in its colour, with
    its ``n_std`` ellipse over the images (:func:`covariance_ellipse`);
    red dots and dashed ellipses: the annotated points. Nothing of an
    individual image shows, which is how research-only face sets (MTFL)
    appear in committed figures (:meth:`lmdis.evaluate.Benchmark.aggregate`).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.2))
    picture = _to_numpy_image(mean_image)
    side_y, side_x = picture.shape[:2]
    scale = np.array([side_x, side_y], np.float64)
    ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1, extent=(0, side_x, side_y, 0))
    colours = landmark_colours(len(landmark_mean))

    def ellipse(mean, cov, colour, style):
        width, height, angle = covariance_ellipse(np.asarray(cov) * np.outer(scale, scale), n_std)
        ax.add_patch(Ellipse(tuple(np.asarray(mean) * scale), width, height, angle=angle, fill=False,
                             edgecolor=colour, linestyle=style, linewidth=1.8))

    for k, (mean, cov) in enumerate(zip(landmark_mean, landmark_cov)):
        ellipse(mean, cov, colours[k], "-")
        ax.scatter(*(np.asarray(mean) * scale), color=colours[k], marker="x", s=70, linewidths=2.5, zorder=3)
        ax.annotate(str(k + 1), np.asarray(mean) * scale, xytext=(4, -4), textcoords="offset points",
                    color="white", fontsize=8, fontweight="bold")
    if annotated_mean is not None:
        for mean, cov in zip(annotated_mean, annotated_cov):
            ellipse(mean, cov, "red", "--")
            ax.scatter(*(np.asarray(mean) * scale), color="red", edgecolor="white", s=45, zorder=3)
    ax.set_xlim(0, side_x)
    ax.set_ylim(side_y, 0)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def few_shot_figure(curve, floor: float | None = None, num_landmarks: int | None = None, title: str | None = None,
                    reference: float | None = None, reference_label: str = "reference", ax=None):
    """Appendix F.1 / Figure 38: test error against the number of labelled images.

    ``curve``: the dicts of :func:`lmdis.evaluate.few_shot_curve` (``n``,
    ``mean``, ``std``, ``min``, ``max`` in %). Bands: mean +- std and
    min-max over the draws; shaded: n < 2K, where the least-squares system
    is underdetermined (``num_landmarks`` = K); dashed lines: the mean-shape
    ``floor`` and an optional ``reference`` error.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.4))
    sizes = np.array([point["n"] for point in curve])
    mean = np.array([point["mean"] for point in curve])
    std = np.array([point["std"] for point in curve])
    ax.fill_between(sizes, [p["min"] for p in curve], [p["max"] for p in curve], color="tab:blue", alpha=0.15,
                    label="min-max over draws")
    ax.fill_between(sizes, mean - std, mean + std, color="tab:blue", alpha=0.3, label="mean ± std")
    ax.plot(sizes, mean, "o-", color="tab:blue", label="mean test error")
    if num_landmarks is not None:
        ax.axvspan(sizes[0] * 0.8, 2 * num_landmarks, color="0.9", zorder=0, label="n < 2K (underdetermined)")
    top = float(np.nanmax(mean)) * 1.2
    if floor is not None:
        ax.axhline(floor, color="tab:red", linestyle="--", label=f"mean training shape ({floor:.1f} %)")
        top = min(max(top, 1.2 * floor), 3 * floor)
    if reference is not None:
        ax.axhline(reference, color="tab:green", linestyle=":", linewidth=2, label=f"{reference_label} ({reference:.1f} %)")
    ax.set(xscale="log", xlabel="labelled training images n", ylabel="test error (% inter-ocular)", ylim=(0, top))
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


# --------------------------------------------------------------------------- Figure 1: the model with its shapes

_PIPELINE_COLOURS = {"data": "#e6e6e6", "network": "#cfe0f5", "tensor": "#fdf1c7", "loss": "#b03020"}


def _shape_text(shape) -> str:
    """(2, 11, 48, 48) -> '(B, 11, 48, 48)': the batch axis as B."""
    return "(" + ", ".join(["B", *map(str, shape[1:])]) + ")"


def _box(ax, centre, text, kind, width=2.6, height=1.3, fontsize=9):
    """A rounded box with centred ``text``; returns its centre and size for :func:`_connect`."""
    from matplotlib.patches import FancyBboxPatch

    x, y = centre
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.02,rounding_size=0.15", facecolor=_PIPELINE_COLOURS[kind],
                                edgecolor="0.35", linewidth=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, linespacing=1.3)
    return {"x": x, "y": y, "w": width, "h": height}


def _edge(box, towards):
    """Where the line from ``box``'s centre to the point ``towards`` leaves the box."""
    dx, dy = towards[0] - box["x"], towards[1] - box["y"]
    scale = min(box["w"] / 2 / abs(dx) if dx else float("inf"), box["h"] / 2 / abs(dy) if dy else float("inf"))
    return box["x"] + dx * scale, box["y"] + dy * scale


def _connect(ax, start, end, label=None, colour="0.25", label_side="above", linestyle="-"):
    """An arrow from box ``start`` to box ``end`` (edge to edge), with an optional label beside its middle."""
    a, b = _edge(start, (end["x"], end["y"])), _edge(end, (start["x"], start["y"]))
    ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.4, shrinkA=1, shrinkB=1,
                                                   linestyle=linestyle))
    if label:
        middle = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        if label_side == "above":
            ax.text(middle[0], middle[1] + 0.12, label, ha="center", va="bottom", fontsize=8, color=colour)
        else:
            ax.text(middle[0] + 0.3, middle[1], label, ha="left", va="center", fontsize=8, color=colour)


def _levels_text(hourglass) -> str:
    """'widths 32-48-48-48' and 'sides 48-24-12-6' of an :class:`lmdis.model.HourglassShapes`."""
    widths = "-".join(str(level[1]) for level in hourglass.encoder)
    sides = "-".join(str(level[2]) for level in hourglass.encoder)
    return f"widths {widths}\nsides {sides}"


def pipeline_figure(shapes, ax=None):
    """Figure 1 of the paper, drawn with the tensor shapes of one model.

    Top row: the detector from the image to the landmarks (Eq. 1-4) and the
    decoder's heatmaps (Eq. 11-12); middle row (models with descriptors,
    Sec. 3.3): the descriptor hourglass, the pooling with the masks of Eq. (6)
    and the descriptors (Eq. 9-10), soft unpooling (Eq. 13); bottom row,
    right to left: the decoder hourglass and the reconstruction (Eq. 14).
    The loss terms of Eq. (15) are written in red where they act. Hourglass
    boxes give the width and side of each level (:func:`hourglass_figure`
    draws the levels).

    Args:
        shapes: a :class:`lmdis.model.PipelineShapes` from
            ``lmdis.model.pipeline_shapes(config)``: every shape drawn is read
            off a forward pass of the model; the batch axis is written B.
        ax: an axes to draw on (default: a new 13 x 5.3 inch figure).
    Returns:
        the figure.
    """
    import matplotlib.pyplot as plt

    tensors, hourglasses, config = shapes.tensors, shapes.hourglasses, shapes.config
    if ax is None:
        figure, ax = plt.subplots(figsize=(13, 5.3))
        figure.subplots_adjust(left=0, right=1, bottom=0, top=1)
    top, middle, bottom = 6.3, 3.8, 1.2
    column = (1.5, 4.4, 7.3, 10.2, 13.1, 16.0)
    sigmas = len(config.sigma_dec)
    sigma_text = [f"{sigma:g}" for sigma in config.sigma_dec]
    sigma_text = ", ".join(sigma_text if sigmas <= 3 else [sigma_text[0], "...", sigma_text[-1]])
    image = _box(ax, (column[0], top), f"image I\n{_shape_text(tensors['image'])}", "data")
    frame = "edge-padded (Table 6)" if tensors["padded"] != tensors["image"] else "not padded (P = S)"
    padded = _box(ax, (column[1], top), f"{frame}\n{_shape_text(tensors['padded'])}", "data")
    detector = _box(ax, (column[2], top), f"detector hourglass$_l$\n{_levels_text(hourglasses['detector'])}",
                    "network")
    maps = _box(ax, (column[3], top), f"maps D = softmax(R)\nEq. (1)-(2)\n{_shape_text(tensors['maps'])}", "tensor")
    landmarks = _box(ax, (column[4], top), f"landmarks, Eq. (3)-(4)\n{_shape_text(tensors['landmarks'])}\n"
                     f"+ variances {_shape_text(tensors['variances'])}", "tensor")
    heatmaps = _box(ax, (column[5], top), f"heatmaps $\\tilde{{D}}$\nEq. (11)-(12)\n"
                    f"{sigmas} x {_shape_text(tensors['heatmaps'])}\n"
                    f"$\\sigma_{{dec}}$ = {sigma_text}", "tensor")
    for start, end in ((image, padded), (padded, detector), (detector, maps), (maps, landmarks),
                       (landmarks, heatmaps)):
        _connect(ax, start, end)
    feeding = heatmaps
    if "descriptors" in tensors:
        descriptor = _box(ax, (column[2], middle), f"descriptor hourglass$_f$\n"
                          f"{_levels_text(hourglasses['descriptor'])}", "network")
        features = _box(ax, (column[3], middle), f"features F, Eq. (9)\n{_shape_text(tensors['features'])}",
                        "tensor")
        pooled = _box(ax, (column[4], middle), f"descriptors f, Eq. (10)\n{_shape_text(tensors['descriptors'])}",
                      "tensor")
        feeding = _box(ax, (column[5], middle), f"unpooled $\\tilde{{F}}$, Eq. (13)\n"
                       f"{sigmas} x {_shape_text(tensors['unpooled'])}", "tensor")
        for start, end in ((padded, descriptor), (descriptor, features), (features, pooled), (pooled, feeding),
                           (heatmaps, feeding)):
            _connect(ax, start, end)
        _connect(ax, maps, pooled, label=f"masks, Eq. (6)\n{_shape_text(tensors['masks'])}", label_side="right")
    decoder_input = _box(ax, (column[5], bottom), f"decoder input, Eq. (14)\n"
                         f"{_shape_text(tensors['decoder_input'])}", "tensor")
    decoder = _box(ax, (column[3], bottom), f"decoder hourglass$_d$\n{_levels_text(hourglasses['decoder'])}",
                   "network")
    reconstruction = _box(ax, (column[0], bottom), f"reconstruction $\\tilde{{I}}$\n"
                          f"{_shape_text(tensors['reconstruction'])}", "data")
    _connect(ax, feeding, decoder_input, label="concatenate", label_side="right")
    _connect(ax, decoder_input, decoder)
    _connect(ax, decoder, reconstruction, label="sigmoid")
    red = _PIPELINE_COLOURS["loss"]
    ax.text(column[3], top + 0.8, "$L_{conc}$, Eq. (5)", ha="center", va="bottom", color=red, fontsize=10)
    ax.text(column[4], top + 0.8, "$L_{sep}$, Eq. (7); $L_{eqv}$, Eq. (8)", ha="center", va="bottom", color=red,
            fontsize=10)
    ax.annotate("", xy=(column[0], bottom + 0.7), xytext=(column[0], top - 0.7),
                arrowprops=dict(arrowstyle="<|-|>", color=red, lw=1.4, linestyle="--"))
    ax.text(column[0] + 0.15, (top + bottom) / 2, "$L_{recon}$, Eq. (17)", ha="left", va="center", color=red,
            fontsize=10)
    ax.set_xlim(0, 17.5)
    ax.set_ylim(0.3, 7.6)
    ax.axis("off")
    return ax.figure



def hourglass_figure(hourglass, title: str | None = None, ax=None):
    """The levels of one hourglass (Appendix G.2, Figure 40): widths, sides and skips.

    Left column, top to bottom: the encoder, one level per pooling (max-pool
    2x2, then 3x3 convolutions); the bottom level in the middle; right
    column, bottom to top: the decoder (nearest x2, then 3x3 convolutions),
    each level adding its skip branch (dashed). Each box gives its channels
    and side; a box's width grows with its channels.

    Args:
        hourglass: a :class:`lmdis.model.HourglassShapes` (one entry of
            ``lmdis.model.pipeline_shapes(config).hourglasses``).
        title: written above the drawing.
        ax: an axes to draw on (default: a new figure sized to the levels).
    Returns:
        the figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    levels = len(hourglass.encoder) - 1
    if ax is None:
        _, ax = plt.subplots(figsize=(4.4, 1.5 + 0.75 * (levels + 1)))
    widest = max(level[1] for level in (*hourglass.encoder, hourglass.bottom))
    left, centre, right = 1.5, 5.0, 8.5

    def block(x, y, shape):
        width = 2.1 + 0.8 * shape[1] / widest
        ax.add_patch(FancyBboxPatch((x - width / 2, y - 0.3), width, 0.6, boxstyle="round,pad=0.02,rounding_size=0.1",
                                    facecolor=_PIPELINE_COLOURS["network"], edgecolor="0.35"))
        ax.text(x, y, f"{shape[1]} ch, {shape[2]}x{shape[3]}", ha="center", va="center", fontsize=8.5)
        return {"x": x, "y": y, "w": width, "h": 0.6}

    encoder = [block(left, -level, shape) for level, shape in enumerate(hourglass.encoder)]
    decoder = [block(right, -level, shape) for level, shape in enumerate(hourglass.decoder)]
    bottom = block(centre, -levels, hourglass.bottom) if levels else None
    for level in range(levels):
        _connect(ax, encoder[level], encoder[level + 1])
        _connect(ax, decoder[level + 1] if level + 1 < levels else bottom, decoder[level])
        _connect(ax, encoder[level], decoder[level], colour="0.45", linestyle="--")
        ax.text(centre, -level + 0.06, f"skip: {hourglass.skip_depth} {'conv' if hourglass.skip_depth == 1 else 'convs'}, added", ha="center", va="bottom",
                fontsize=8, color="0.35")
    if levels:
        _connect(ax, encoder[-1], bottom)
    out = decoder[0] if levels else encoder[0]
    ax.text(left, 0.75, f"in {_shape_text(hourglass.input)}", ha="center", va="bottom", fontsize=8.5)
    ax.text(out["x"], 0.75, f"out {_shape_text(hourglass.output)}", ha="center", va="bottom", fontsize=8.5)
    ax.annotate("", xy=(left, 0.32), xytext=(left, 0.72), arrowprops=dict(arrowstyle="-|>", color="0.25", lw=1.4))
    ax.annotate("", xy=(out["x"], 0.72), xytext=(out["x"], 0.32), arrowprops=dict(arrowstyle="-|>", color="0.25",
                                                                                  lw=1.4))
    conv = "conv" if hourglass.convs_per_level == 1 else "convs"
    ax.text(centre, -levels - 0.55, f"down: max-pool 2x2, {hourglass.convs_per_level} {conv}; "
            f"up: nearest x2, {hourglass.convs_per_level} {conv}\nconv: 3x3, batch norm, LeakyReLU(0.2); "
            "out: 1x1 conv", ha="center", va="top", fontsize=8, color="0.35", linespacing=1.3)
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_xlim(0, 10)
    ax.set_ylim(-levels - 1.45, 1.25)
    ax.axis("off")
    return ax.figure


def equivariance_figure(image, landmarks, warped, warped_landmarks, mapped, panel_inches: float = 1.9,
                        size: float = 70):
    """Eq. (8) seen on a detector: its landmarks on I, on warped copies I', and mapped back by g.

    Top row: I with its landmarks x_k (crosses), then each warped copy
    I'_n(p) = I(g_n(p)) with the landmarks x'_k found on it. Bottom row,
    under each copy: I with x_k (crosses) and g_n(x'_k) (rings, same colour
    per landmark); the title gives the mean distance between them in
    pixels. For an equivariant detector the rings sit on the crosses.

    Args:
        image: (C, H, W) or (H, W[, C]); landmarks: (K, 2) on it.
        warped: N images like ``image``; warped_landmarks, mapped: (N, K, 2).
            All points normalised (x, y) in the frame of ``image``.
        panel_inches, size: side of each panel, area of the markers (points^2).
    Returns:
        the figure.
    """
    import matplotlib.pyplot as plt

    landmarks, warped_landmarks, mapped = map(_to_numpy_points, (landmarks, warped_landmarks, mapped))
    count = len(warped)
    if not (len(warped_landmarks) == len(mapped) == count):
        raise ValueError(f"equivariance_figure needs one entry per warped image: {count} images, "
                         f"{len(warped_landmarks)} warped_landmarks, {len(mapped)} mapped")
    height, width = _to_numpy_image(image).shape[:2]
    colours = landmark_colours(len(landmarks))
    figure, axes = plt.subplots(2, count + 1, figsize=(panel_inches * (count + 1), 2 * panel_inches + 0.4),
                                squeeze=False)
    show_landmarks(image, landmarks, ax=axes[0, 0], size=size)
    axes[0, 0].set_title("I with x", fontsize=9)
    axes[1, 0].axis("off")
    axes[1, 0].text(0.5, 0.5, "below each I':\nx on I (crosses)\nand g(x') (rings)", ha="center", va="center",
                    fontsize=9, transform=axes[1, 0].transAxes)
    for n in range(count):
        show_landmarks(warped[n], warped_landmarks[n], ax=axes[0, n + 1], size=size)
        axes[0, n + 1].set_title(f"I' #{n} with x'", fontsize=9)
        ax = axes[1, n + 1]
        show_landmarks(image, landmarks, ax=ax, size=size)
        ax.scatter(mapped[n, :, 0] * width, mapped[n, :, 1] * height, s=1.6 * size, facecolors="none",
                   edgecolors=colours, linewidths=2)
        distance = np.linalg.norm((mapped[n] - landmarks) * (width, height), axis=-1).mean()
        ax.set_title(f"|g(x') - x| = {distance:.1f} px", fontsize=9)
    figure.tight_layout()
    return figure


def gradient_arrows(image, landmarks, arrows, reference=None, ax=None, size: float = 45):
    """Arrows from landmarks (Sec. 3.5 style gradient picture), legible over the image.

    Landmarks are outlined dots (:func:`draw_outlined_landmarks`); each arrow starts
    at its landmark, in the same colour with a dark outline, so it stands out
    on light and dark pixels; optional ``reference`` points are crosses.

    Args:
        image: (C, H, W) or (H, W[, C]).
        landmarks: (K, 2) normalised (x, y); arrows: (K, 2) displacements in
            the same units (already scaled for display).
        reference: optional (K, 2), e.g. where the detector put the points.
        size: marker area in points^2.
    Returns:
        the figure.
    """
    import matplotlib.patheffects as effects
    import matplotlib.pyplot as plt

    landmarks, arrows = _to_numpy_points(landmarks), _to_numpy_points(arrows)
    if landmarks.shape != arrows.shape or landmarks.ndim != 2 or landmarks.shape[1] != 2:
        raise ValueError(f"landmarks and arrows must both be (K, 2), got {landmarks.shape} and {arrows.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    colours = landmark_colours(len(landmarks))
    show_landmarks(image, np.zeros((0, 2)), ax=ax)
    height, width = _to_numpy_image(image).shape[:2]
    if reference is not None:
        points = _to_numpy_points(reference)
        ax.scatter(points[:, 0] * width, points[:, 1] * height, c=colours, marker="x", s=size, linewidths=2,
                   path_effects=[effects.withStroke(linewidth=3.5, foreground="black")], zorder=2)
    outline = [effects.withStroke(linewidth=4, foreground="black")]
    for start, step, colour in zip(landmarks * (width, height), arrows * (width, height), colours):
        ax.annotate("", xy=start + step, xytext=start, zorder=2.5,
                    arrowprops=dict(arrowstyle="-|>,head_length=0.5,head_width=0.3", color=colour, lw=2,
                                    shrinkA=0, shrinkB=0, path_effects=outline))
    draw_outlined_landmarks(ax, landmarks, width, height, size=size)
    return ax.figure


def loss_terms_figure(history, titles: dict[str, str], every_step=None, schedule=None, panel_inches: float = 2.9):
    """The terms of Eq. (15) against the step, one log-scale panel each, with the schedule marked.

    Args:
        history: entries ``{"step": n, term: value, ...}`` (the trainer's
            means over ``log_every`` steps), drawn as a black line (orange
            for ``"total"``).
        titles: term -> panel title, in panel order.
        every_step: optional entries like ``history``, one per step, drawn
            thin and grey behind it.
        schedule: optional label -> (steps, colour): a dashed vertical line at
            each step inside the plotted range. Each label with such a step
            draws in its own band of the panel's height, so steps that
            coincide (a lambda_recon increase at the end of a warm-up) stay
            visible; labels without one are left out, legend included.
    Returns:
        the figure, with one legend for all panels below them.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if not history:
        raise ValueError("loss_terms_figure needs at least one history entry")
    schedule = schedule or {}
    last = max(entry["step"] for entry in [*history, *(every_step or [])])
    figure, axes = plt.subplots(1, len(titles), figsize=(panel_inches * len(titles), panel_inches + 0.5),
                                squeeze=False)
    handles = {}
    for ax, (name, title) in zip(axes[0], titles.items()):
        if every_step:
            ax.plot([entry["step"] for entry in every_step], [entry[name] for entry in every_step], color="0.75",
                    lw=0.6)
            handles["every step"] = Line2D([], [], color="0.75", lw=1)
        colour = "tab:orange" if name == "total" else "black"
        ax.plot([entry["step"] for entry in history], [entry[name] for entry in history], color=colour, lw=1.6)
        drawn = {label: ([step for step in steps if 0 < step < last], line_colour)
                 for label, (steps, line_colour) in schedule.items()}
        drawn = {label: value for label, value in drawn.items() if value[0]}
        for band, (label, (steps, line_colour)) in enumerate(drawn.items()):
            for step in steps:
                ax.axvline(step, ymin=1 - (band + 1) / len(drawn), ymax=1 - band / len(drawn), color=line_colour,
                           linestyle="--", linewidth=1.6)
            handles[label] = Line2D([], [], color=line_colour, linestyle="--", lw=1.6)
        ax.set(yscale="log", xlabel="step")
        ax.set_title(title, fontsize=10)
    handles["mean over the logging interval"] = Line2D([], [], color="black", lw=1.6)
    figure.legend(list(handles.values()), list(handles), loc="lower center", ncol=len(handles), fontsize=9,
                  frameon=False)
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    return figure


def manipulation_figure(image, landmarks, reconstruction, edits: dict, panel_inches: float = 2.1, size: float = 60):
    """Figure 10: an input, its reconstruction and the decoder's output for edited landmarks.

    Args:
        image: (C, S, S) input; landmarks: (K, 2) its detected landmarks.
        reconstruction: (C, S, S) decoded from the unedited landmarks.
        edits: title -> (edited landmarks (K, 2), decoded image (C, S, S)).
    Top row: the input, then each decoded image with its landmarks in colour and,
    in grey, where they were and how they moved. Bottom row: the change against
    the reconstruction, averaged over colour channels (red: brighter, blue: darker).
    """
    import matplotlib.pyplot as plt

    columns = len(edits) + 2
    figure, axes = plt.subplots(2, columns, figsize=(panel_inches * columns, 2 * panel_inches + 0.4), squeeze=False)
    side = _to_numpy_image(image).shape[1]
    points = _to_numpy_points(landmarks) * side
    show_landmarks(image, landmarks, ax=axes[0, 0], size=size)
    axes[0, 0].set_title("input", fontsize=9)
    show_landmarks(reconstruction, landmarks, ax=axes[0, 1], size=size)
    axes[0, 1].set_title("reconstruction", fontsize=9)
    for ax in axes[1, :2]:
        ax.axis("off")
    reference = torch.as_tensor(reconstruction, dtype=torch.float32)
    for column, (title, (edited, decoded)) in enumerate(edits.items(), start=2):
        show_landmarks(decoded, edited, ax=axes[0, column], size=size)
        moved = _to_numpy_points(edited) * side
        for before, after in zip(points, moved):
            if np.abs(after - before).max() > 1e-6:
                axes[0, column].plot([before[0], after[0]], [before[1], after[1]], color="white", linewidth=2.2)
                axes[0, column].plot([before[0], after[0]], [before[1], after[1]], color="0.35", linewidth=1.2)
                axes[0, column].scatter([before[0]], [before[1]], color="0.35", edgecolor="white", s=size / 3)
        axes[0, column].set_title(title, fontsize=9)
        change = (torch.as_tensor(decoded, dtype=torch.float32) - reference).mean(dim=0).numpy()
        axes[1, column].imshow(change, cmap="seismic", vmin=-0.5, vmax=0.5)
        axes[1, column].axis("off")
        axes[1, column].set_title(f"change, mean |d| {np.abs(change).mean():.3f}", fontsize=8)
    figure.tight_layout()
    return figure
