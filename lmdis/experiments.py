"""Small experiments the notebooks share: cached runs, ablations and their metrics.

- :func:`train_or_load` trains a config into a folder named after the config
  (and a tag naming the data), or loads the finished checkpoint already
  there, so notebooks run in order reuse each other's models and each still
  runs alone;
- :func:`shortened` fits a preset's schedule into fewer steps;
  :func:`ablation` removes one loss term of Eq. (15) (Table 1c) or changes the
  grid:landmark ratio of TPS control points (Table 5, Appendix F.3);
- :func:`landmark_metrics` measures a model on held-out images without
  annotations: per-axis variance (what Eq. 5 shrinks), nearest-neighbour
  distance (what Eq. 7 enlarges), equivariance error (Eq. 8) and
  reconstruction error;
- :class:`ConfidenceMapRecorder` is a :class:`~lmdis.train.Trainer` callback
  keeping the confidence maps D (Eq. 2) of fixed images at chosen steps
  (Appendix F.2, Figure 39); :func:`confidence_map_figure` draws them;
- :func:`split_data` gives a preset's data (e.g. the embedded MNIST digits
  of Appendix B, optionally some digits only) as a training set and a
  held-out set.

Convention: landmarks are normalised ``(x, y)`` (see :mod:`lmdis.geometry`).
The metrics are measured in the padded frame the detector and the losses work
in (Table 7's sigmas and lambdas refer to it), so they read like the training
log's terms.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch.utils.data import Dataset, Subset

from lmdis.config import Config
from lmdis.tps import TransformConfig, apply_transform, centre_crop, sample_random_transform, warp_images
from lmdis.train import LOSS_TERMS, Trainer, context_size, load_checkpoint

DEFAULT_RUNS_ROOT = Path("runs") / "zoo"   # relative to the working directory; runs/ is git-ignored


# --------------------------------------------------------------------------- cached training runs

def config_digest(config: Config, tag: str = "") -> str:
    """Ten hex digits identifying ``config`` (every field) together with ``tag``."""
    text = json.dumps(config.to_dict(), sort_keys=True) + "\n" + tag
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def run_directory(config: Config, tag: str, root: str | Path = DEFAULT_RUNS_ROOT) -> Path:
    """``root/<config name>-<tag>-<digest>``: one folder per (config, data) pair."""
    safe_tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", tag).strip("-")
    return Path(root) / f"{config.name}-{safe_tag}-{config_digest(config, tag)}"


def train_or_load(config: Config, dataset: Dataset, tag: str, root: str | Path = DEFAULT_RUNS_ROOT,
                  out_dir: str | Path | None = None, callbacks: Mapping[str, Callable] | None = None,
                  device: str = "auto", progress: bool = False, log: Callable[[str], None] = print) -> Trainer:
    """Train ``config`` on ``dataset`` unless a finished run of it is already on disk.

    The run lives in ``out_dir`` (default :func:`run_directory`, so another
    config or tag never reuses it). A checkpoint at ``config.train.steps``
    there is loaded and nothing is optimised (``callbacks`` do not fire); an
    unfinished one is resumed exactly; otherwise training starts from step 0.

    Args:
        tag: names the data (e.g. ``"mnist-train"``): the folder cannot tell
            two data sets apart by itself.
        callbacks: ``{"on_step_end": fn, "on_checkpoint": fn}`` (either may be
            left out), attached before training.
    Returns:
        the :class:`~lmdis.train.Trainer`, its model in eval mode;
        ``trainer.resumed_from == config.train.steps`` tells that it was loaded.
    Raises:
        ValueError: ``out_dir`` holds a checkpoint of another config.
    """
    out_dir = Path(out_dir) if out_dir is not None else run_directory(config, tag, root)
    checkpoint_path = out_dir / "checkpoint.pt"
    if checkpoint_path.exists():
        saved = Config.from_dict(load_checkpoint(checkpoint_path)["config"])
        if saved != config:
            changed = sorted(f"{section}.{key}" for section, values in config.to_dict().items()
                             if isinstance(values, dict)
                             for key, value in values.items() if saved.to_dict()[section][key] != value)
            raise ValueError(f"{checkpoint_path} was trained with another config (differs in {changed or 'name'}); "
                             f"use another out_dir or the default one")
    trainer = Trainer(config, dataset, out_dir, device=device, progress=progress, resume=True, log=log)
    for event, function in (callbacks or {}).items():
        trainer.add_callback(event, function)
    if trainer.step >= config.train.steps:
        log(f"loaded {checkpoint_path} (step {trainer.step}); no training needed")
    else:
        trainer.fit()
    trainer.model.eval()
    return trainer


# --------------------------------------------------------------------------- ablations

def shortened(config: Config, steps: int) -> Config:
    """A copy trained for ``steps`` with every schedule boundary scaled alike.

    The learning-rate decays, the lambda_recon increases and the landmark-TPS
    warm-up move by ``steps / config.train.steps``, so a short run passes
    through the same phases as the preset. Checkpoint and log intervals are
    capped at ``steps``.
    """
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    factor = steps / config.train.steps
    copy = Config.from_dict(config.to_dict())
    train = copy.train
    train.steps = steps
    train.lr_decay_steps = tuple(max(1, round(step * factor)) for step in train.lr_decay_steps)
    copy.loss.recon_increase_steps = tuple(max(1, round(step * factor)) for step in copy.loss.recon_increase_steps)
    train.landmark_tps_warmup = round(train.landmark_tps_warmup * factor)
    train.checkpoint_every = min(train.checkpoint_every, steps)
    train.log_every = min(train.log_every, steps)
    return copy


def ablation(config: Config, without: str | None = None, tps_ratio: tuple[float, float] | None = None) -> Config:
    """A copy of ``config`` for one ablation of the paper.

    Args:
        without: a term of Eq. (15) whose lambda becomes 0: ``"conc"``,
            ``"sep"``, ``"eqv"`` or ``"recon"`` (Table 1c).
        tps_ratio: ``(grid, landmark)`` odds of the TPS control points after
            the warm-up, e.g. ``(7, 3)`` (the default), ``(1, 0)`` (grid
            only) or ``(1, 1)`` (Table 5).
    Returns:
        the new config, named after the change (``mnist-cpu-no-sep``,
        ``mnist-cpu-tps-1-1``).
    """
    copy = Config.from_dict(config.to_dict())
    if without is not None:
        if without not in LOSS_TERMS:
            raise ValueError(f"without must be one of {LOSS_TERMS}, got {without!r}")
        setattr(copy.loss, f"lambda_{without}", 0.0)
        copy.name += f"-no-{without}"
    if tps_ratio is not None:
        grid, landmark = tps_ratio
        if grid < 0 or landmark < 0 or grid + landmark <= 0:
            raise ValueError(f"tps_ratio must be two non-negative odds, not both zero, got {tps_ratio}")
        copy.train.landmark_tps_ratio = landmark / (grid + landmark)
        copy.name += f"-tps-{grid:g}-{landmark:g}"
    return copy


def ablation_configs(config: Config, without=("conc", "sep", "eqv"), tps_ratios=((1, 0), (7, 3), (1, 1))
                     ) -> dict[str, Config]:
    """The runs of Table 1c and Table 5 as ``{label: config}``, the full model first.

    A TPS ratio equal to ``config``'s own is the full model itself and is not
    repeated (its label says so), so no run is trained twice.
    """
    grid_share = 1 - config.train.landmark_tps_ratio
    runs = {f"full ({_ratio_label(grid_share, config.train.landmark_tps_ratio)})": config}
    for term in without:
        runs[f"w/o {term}"] = ablation(config, without=term)
    for grid, landmark in tps_ratios:
        variant = ablation(config, tps_ratio=(grid, landmark))
        if abs(variant.train.landmark_tps_ratio - config.train.landmark_tps_ratio) > 1e-9:
            runs[f"TPS {grid:g}:{landmark:g}"] = variant
    return runs


def _ratio_label(grid: float, landmark: float) -> str:
    """0.7, 0.3 -> '7:3' (the paper's grid:landmark notation)."""
    for denominator in range(1, 11):
        if abs(grid * denominator - round(grid * denominator)) < 1e-9:
            return f"{round(grid * denominator)}:{round(landmark * denominator)}"
    return f"{grid:g}:{landmark:g}"


# --------------------------------------------------------------------------- metrics

def per_axis_variance(variances: torch.Tensor) -> float:
    """Mean of the per-axis variances (sigma_u^2, sigma_v^2), (B, K, 2) -> float.

    A uniform map over the frame gives 1/12 ~= 0.083; a landmark concentrated
    on a few pixels gives ~1e-3 or less.
    """
    return float(variances.mean())


def nearest_neighbour_distance(landmarks: torch.Tensor) -> float:
    """Mean over images and landmarks of the distance to the closest other landmark.

    Args:
        landmarks: (B, K, 2) normalised (x, y), K >= 2.
    """
    if landmarks.dim() != 3 or landmarks.shape[1] < 2:
        raise ValueError(f"landmarks must be (B, K, 2) with K >= 2, got {tuple(landmarks.shape)}")
    distances = torch.cdist(landmarks, landmarks)                                       # (B, K, K)
    distances = distances + torch.diag(torch.full((landmarks.shape[1],), float("inf")))  # exclude k' = k
    return float(distances.min(dim=2).values.mean())


def equivariance_error(mapped_warped_landmarks: torch.Tensor, landmarks: torch.Tensor) -> float:
    """Mean distance ||g(x'_k, y'_k) - (x_k, y_k)|| over images and landmarks (Eq. 8, not squared).

    Args:
        mapped_warped_landmarks: (B, K, 2) landmarks of the warped images mapped back through g.
        landmarks: (B, K, 2) landmarks of the original images.
    """
    return float((mapped_warped_landmarks - landmarks).norm(dim=-1).mean())


@torch.no_grad()
def landmark_metrics(model, images: torch.Tensor, transform: TransformConfig | None = None, seed: int = 0,
                     batch_size: int = 100) -> dict[str, float]:
    """Measure a trained model on images it did not train on (no annotations needed).

    Each image is warped once by a random grid-TPS transform drawn with
    ``seed`` (the same transforms for every model compared).

    Args:
        model: a :class:`~lmdis.model.LandmarkAutoencoder` (used in eval mode).
        images: (N, C, S, S) in [0, 1].
        transform: the random transform (default: the paper's, Appendix G.3).
    Returns:
        ``variance`` (per axis), ``nearest_neighbour``, ``equivariance``
        (padded frame, fraction of its side) and ``reconstruction`` (mean
        squared error per pixel).
    """
    model = model.eval()
    device = next(model.parameters()).device
    transform = transform or TransformConfig()
    generator = torch.Generator().manual_seed(seed)
    variances, landmarks, mapped, squared_errors = [], [], [], []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].to(device)
        padded = model.pad(batch)
        detection = model.detector(padded)
        warp = sample_random_transform(len(batch), transform, generator, device=device)
        warped = model.detector(warp_images(padded, warp))
        descriptors = model.descriptor(padded, detection) if model.descriptor is not None else None
        reconstruction = model.decode(model.to_image_frame(detection.landmarks), descriptors)
        variances.append(detection.variances.cpu())
        landmarks.append(detection.landmarks.cpu())
        mapped.append(apply_transform(warped.landmarks, warp).cpu())
        squared_errors.append(((reconstruction - batch) ** 2).flatten(1).mean(dim=1).cpu())
    landmarks = torch.cat(landmarks)
    return {
        "variance": per_axis_variance(torch.cat(variances)),
        "nearest_neighbour": nearest_neighbour_distance(landmarks),
        "equivariance": equivariance_error(torch.cat(mapped), landmarks),
        "reconstruction": float(torch.cat(squared_errors).mean()),
    }


# --------------------------------------------------------------------------- confidence maps during training

class ConfidenceMapRecorder:
    """Trainer callback: the confidence maps D of fixed images at chosen steps (Figure 39).

    ``recorder.attach(trainer)`` records step 0 (when the trainer is there)
    and registers itself for ``"on_step_end"``; afterwards ``maps[step]`` is
    (B, K+1, P, P) on the padded frame (last channel = background),
    ``landmarks[step]`` (B, K, 2) in the image frame and ``variances[step]``
    (B, K, 2) the per-axis variances in the padded frame. The maps are taken
    in eval mode, with the batch-norm running averages of that moment.
    """

    def __init__(self, images: torch.Tensor, steps):
        self.images = images
        self.steps = sorted(set(int(step) for step in steps))
        self.maps: dict[int, torch.Tensor] = {}
        self.landmarks: dict[int, torch.Tensor] = {}
        self.variances: dict[int, torch.Tensor] = {}

    def attach(self, trainer: Trainer) -> "ConfidenceMapRecorder":
        if trainer.step in self.steps:
            self.record(trainer.model, trainer.step)
        trainer.add_callback("on_step_end", self)
        return self

    @torch.no_grad()
    def record(self, model, step: int) -> None:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        detection = model.detector(model.pad(self.images.to(device)))
        self.maps[step] = detection.maps.cpu()
        self.landmarks[step] = model.to_image_frame(detection.landmarks).cpu()
        self.variances[step] = detection.variances.cpu()
        model.train(was_training)

    def __call__(self, trainer: Trainer, terms: dict) -> None:
        if trainer.step in self.steps:
            self.record(trainer.model, trainer.step)


def confidence_map_figure(images: torch.Tensor, rows: dict[str, torch.Tensor], landmarks: dict[str, torch.Tensor],
                          image_size: int, padded_size: int, index: int = 0):
    """Figure 39: one row per training stage, one column per channel of D, then the landmarks.

    Args:
        images: (B, C, S, S) the recorded images.
        rows: label -> maps (B, K+1, P, P); the background channel is drawn last.
        landmarks: label -> (B, K, 2) in the image frame.
        index: which image of the batch to draw.
    Returns:
        the figure. Each map is scaled to its own maximum; the dashed square
        marks the unpadded image inside the padded frame.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from lmdis.plotting import landmark_colours, show_landmarks

    labels = list(rows)
    channels = next(iter(rows.values())).shape[1]
    figure, axes = plt.subplots(len(labels), channels + 1, figsize=(1.3 * (channels + 1), 1.4 * len(labels)),
                                squeeze=False)
    colours = landmark_colours(channels - 1)
    margin = (padded_size - image_size) / 2
    for row, label in enumerate(labels):
        maps = rows[label][index]                                          # (K+1, P, P)
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
        show_landmarks(images[index], landmarks[label][index], ax=axes[row, -1], size=30)
    axes[0, -1].set_title("landmarks", fontsize=9)
    figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- data

@dataclass
class DataSplit:
    """A preset's data as a training set and a held-out set, and the tag naming them for :func:`train_or_load`."""

    training: Dataset
    held_out: Dataset
    tag: str

    def held_out_images(self, count: int | None = None, labels=None) -> torch.Tensor:
        """(N, C, S, S): the first ``count`` held-out images (whose label is in ``labels``, when given)."""
        images = []
        for index in range(len(self.held_out)):
            item = self.held_out[index]
            if labels is None or item.get("label") in labels:
                images.append(item["image"])
            if count is not None and len(images) == count:
                break
        if not images:
            raise ValueError(f"no held-out image with a label in {labels}")
        return torch.stack(images)


_DECODED: dict[tuple, Dataset] = {}


def _decoded_dataset(config: Config, data: str | None) -> Dataset:
    """The decoded training data, kept for the next split (a notebook splits the same data several times)."""
    from lmdis.cli import training_dataset

    key = (config.train.dataset, config.train.split, data, context_size(config), config.model.channels)
    if key not in _DECODED:
        _DECODED.clear()  # one data set at a time: MNIST is 4 MB, a face set much more
        _DECODED[key] = training_dataset(config, data)
    return _DECODED[key]


def split_data(config: Config, data: str | Path | None = None, digits=None, held_out_every: int = 10) -> DataSplit:
    """The data ``config`` trains on (``config.train.dataset`` read from ``data``), split in two.

    Every ``held_out_every``-th image is held out (for the embedded MNIST,
    sorted by digit, both sets keep the digits' proportions). ``digits``
    keeps only those MNIST digits (Appendix B.1 trains one model per digit).
    """
    dataset = _decoded_dataset(config, None if data is None else str(data))
    indices = list(range(len(dataset)))
    tag = config.train.dataset + (f"-{config.train.split}" if config.train.split else "")
    tag += "" if data is None else f"-{data}"
    if digits is not None:
        wanted = {int(digits)} if isinstance(digits, int) else {int(d) for d in digits}
        if "label" not in dataset[0]:
            raise ValueError(f"digits={sorted(wanted)} needs a labelled data set (MNIST), not {config.train.dataset!r}")
        indices = [i for i in indices if dataset[i]["label"] in wanted]
        if not indices:
            raise ValueError(f"no image has a label in {sorted(wanted)}")
        tag += "-digits" + "".join(str(d) for d in sorted(wanted))
    held_out = indices[::held_out_every]
    training = [index for position, index in enumerate(indices) if position % held_out_every]
    held_out_set = Subset(dataset, held_out)
    if config.train.warp_context:  # loaded with surroundings for the warps: hold out the training view
        held_out_set = CentreCropped(held_out_set, config.model.image_size)
    return DataSplit(Subset(dataset, training), held_out_set, f"{tag}-holdout{held_out_every}")


class CentreCropped(Dataset):
    """Items of ``dataset`` with their ``"image"`` cropped to the central ``size`` x ``size``."""

    def __init__(self, dataset: Dataset, size: int):
        self.dataset, self.size = dataset, size

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        item = dict(self.dataset[index])
        item["image"] = centre_crop(item["image"][None], self.size)[0]
        return item
