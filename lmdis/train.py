"""Training: the objective of Eq. (15) and the schedule of Appendix G.3-G.4.

:class:`LandmarkObjective` computes every loss term for one batch (a module,
so ``DistributedDataParallel`` can wrap it); :class:`Trainer` runs Adam with
the learning-rate steps and the x10 ``lambda_recon`` increases, checkpoints
atomically, resumes exactly (model, optimiser, step, data order and every
random generator), recomputes batch-norm statistics before each save, and
calls user callbacks (notebooks attach plots there). :func:`train_or_load`
caches finished runs in folders named after their config, so notebooks reuse
each other's models; :func:`train_or_load_all` trains several such runs (the
seeds of an ablation) side by side in worker processes. Checkpoint files
themselves are :mod:`lmdis.checkpoint`.

Devices: CUDA when present (``device="auto"``), optional AMP and
channels_last, DataLoader workers, and several processes through
``torchrun`` (gloo on CPU, NCCL on GPUs).
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import pickle
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Mapping

import torch
import torch.distributed as dist
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from lmdis.checkpoint import atomic_save, load_checkpoint, load_weights, non_finite_tensor
from lmdis.config import Config
from lmdis.data import centre_crop, collate_images
from lmdis.losses import LOSS_TERMS, concentration_loss, equivariance_loss, reconstruction_loss, separation_loss
from lmdis.model import LandmarkAutoencoder
from lmdis.tps import apply_transform, sample_random_transform, warp_images

DEFAULT_RUNS_ROOT = Path("runs") / "zoo"   # of train_or_load, relative to the working directory; runs/ is git-ignored


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def recon_weight(config: Config, step: int) -> float:
    """lambda_recon at ``step``: the initial value times the factor of each increase passed.

    The factors are ``loss.recon_increase_factors``, x10 each when empty (G.3).
    """
    loss = config.loss
    factors = loss.recon_increase_factors or (10.0,) * len(loss.recon_increase_steps)
    weight = loss.lambda_recon
    for boundary, factor in zip(loss.recon_increase_steps, factors):
        if step >= boundary:
            weight *= factor
    return weight


def term_weights(config: Config, step: int) -> dict[str, float]:
    """The lambdas of Eq. (15) at ``step``, keyed like :data:`LOSS_TERMS`."""
    return {"recon": recon_weight(config, step), "conc": config.loss.lambda_conc,
            "sep": config.loss.lambda_sep, "eqv": config.loss.lambda_eqv}


def learning_rate(config: Config, step: int) -> float:
    """Adam's rate at ``step``: x0.1 at each of ``lr_decay_steps`` (G.3)."""
    decays = sum(step >= boundary for boundary in config.train.lr_decay_steps)
    return config.train.learning_rate * 0.1**decays


def jitter_colours(images: torch.Tensor, brightness: float, contrast: float, generator: torch.Generator):
    """Random brightness (additive) and contrast (about each image's mean), clipped to [0, 1]."""
    batch = images.shape[0]
    shift = (2 * torch.rand(batch, 1, 1, 1, generator=generator) - 1) * brightness
    factor = 1 + (2 * torch.rand(batch, 1, 1, 1, generator=generator) - 1) * contrast
    shift, factor = shift.to(images.device), factor.to(images.device)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return ((images - mean) * factor + mean + shift).clamp(0, 1)


def random_zoom(images: torch.Tensor, zoom_range: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Zoom into a random window of each image (not in the paper; off by default).

    The zoom s is log-uniform in ``zoom_range`` (s >= 1); the window of side
    1/s (normalised) lies inside the image at a uniformly random place and is
    resampled bilinearly to the full size. Training images then cover larger
    object scales than the data set has, which matters when the faces to be
    evaluated are cropped tighter than the training faces (MTFL: the AFLW
    test crops have a 1.5x larger inter-ocular distance than the training
    crops).
    """
    low, high = zoom_range
    if not 1 <= low <= high:
        raise ValueError(f"zoom_range must satisfy 1 <= low <= high, got {zoom_range}")
    batch = images.shape[0]
    log_zoom = math.log(low) + torch.rand(batch, generator=generator) * (math.log(high) - math.log(low))
    side = torch.exp(-log_zoom)                                            # window side, normalised
    centre = side[:, None] / 2 + torch.rand(batch, 2, generator=generator) * (1 - side[:, None])
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = side                                 # [-1, 1] units: scale by the side
    theta[:, :, 2] = 2 * centre - 1
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def training_view(images: torch.Tensor, config: Config) -> torch.Tensor:
    """The (B, C, S, S) images the model is trained on, from batches loaded at ``config.context_size``."""
    expected = config.context_size
    if images.shape[-1] != expected or images.shape[-2] != expected:
        raise ValueError(f"training images must be {expected}x{expected} (the image size "
                         f"{config.model.image_size} plus train.warp_context={config.train.warp_context} on each "
                         f"side; lmdis.config.Config.context_size), got {tuple(images.shape[-2:])}")
    return centre_crop(images, config.model.image_size)


class LandmarkObjective(nn.Module):
    """Eq. (15) for one batch: returns the weighted total and each term.

    The detector sees the edge-padded images and their random-TPS-warped
    copies (Eq. 8); concentration and separation use both, reconstruction
    the originals only (as the authors do), all of them or the first
    ``train.recon_batch_size``. With ``train.joint_detector_pass``
    (default) the originals and the warped copies go through the detector as
    one 2B batch, as in the authors' code, so batch norm normalises both with
    the same statistics; with it off they are two passes (two sets of batch
    statistics). The landmark losses are computed in the padded frame the
    detector works in (normalised by the padded side, as in the authors'
    code), so e.g. sigma_sep = 0.06 of a 96 frame is 0.072 of the 80x80 image.
    With ``train.warps_per_image`` W > 1 each original gets W independent
    warps; Eq. (8) and the warped halves of the concentration and
    separation terms average over all W B copies.
    """

    def __init__(self, model: LandmarkAutoencoder, config: Config):
        super().__init__()
        self.model = model
        self.config = config

    def forward(self, images: torch.Tensor, step: int, generator: torch.Generator, use_landmark_tps: bool,
                inspect: dict | None = None):
        """images: (B, C, L, L) at ``config.context_size`` (L = S without ``train.warp_context``).

        ``step`` is the schedule position (for lambda_recon). ``inspect``, a
        dict, receives the tensors that diagnostics differentiate against:
        ``landmarks`` (B, K, 2) and ``warped_landmarks`` (W B, K, 2) of the
        warped copies, both in the padded frame, ``maps``: the confidence-map
        tensors every term is computed from (one ((1 + W) B, K+1, P, P) tensor
        with the joint pass, else (B, ...) and (W B, ...)), and, when the decoder is trained,
        ``decoder_landmarks``: the landmarks in the image frame it decodes.
        """
        config, model = self.config, self.model
        context = images
        images = training_view(context, config)
        padded = model.pad(images)
        batch = images.shape[0]
        control_points = None
        if use_landmark_tps:
            if config.train.joint_detector_pass:
                # The control points must be known before the warp; their
                # gradient is not used (sample_random_transform detaches them).
                with torch.no_grad():
                    control_points = model.detector(padded).landmarks
            else:
                detection = model.detector(padded)
                control_points = detection.landmarks
        # W = train.warps_per_image warped copies per original, warp-major:
        # row w * B + b is image b's w-th copy.
        copies = config.train.warps_per_image
        if control_points is not None:
            control_points = control_points.repeat(copies, 1, 1)
        transform = sample_random_transform(batch * copies, config.transform, generator, landmarks=control_points,
                                            device=images.device)
        # The padded frame is the central P / L of the loaded images; where it
        # reaches beyond them, border replication is the edge padding itself.
        warped_images = warp_images(context.repeat(copies, 1, 1, 1), transform, size=padded.shape[-1],
                                    context_scale=padded.shape[-1] / context.shape[-1])
        if config.train.joint_detector_pass:
            both = model.detector(torch.cat([padded, warped_images.to(padded.dtype)], dim=0))
            detection, warped = both.rows(slice(None, batch)), both.rows(slice(batch, None))
            maps = [both.maps]
        else:
            if control_points is None:
                detection = model.detector(padded)
            warped = model.detector(warped_images)
            maps = [detection.maps, warped.maps]
        mapped = apply_transform(warped.landmarks, transform)
        terms = {
            "eqv": equivariance_loss(mapped, detection.landmarks.repeat(copies, 1, 1)),
            "conc": 0.5 * (concentration_loss(detection.variances, config.loss.concentration_form)
                           + concentration_loss(warped.variances, config.loss.concentration_form)),
            "sep": 0.5 * (separation_loss(detection.landmarks, config.loss.sigma_sep)
                          + separation_loss(warped.landmarks, config.loss.sigma_sep)),
        }
        weights = term_weights(config, step)
        if inspect is not None:
            inspect.update(landmarks=detection.landmarks, warped_landmarks=warped.landmarks, maps=maps)
        if not config.trains_decoder:
            # Table 1c's "w/o L_recon": the descriptor and decoder get no
            # gradient, so they are not run at all (the detector alone).
            terms["recon"] = images.new_zeros(())
        else:
            # Eq. (17) on the first recon_batch_size originals (all with 0):
            # a mean over fewer images, the same expectation.
            count = config.train.recon_batch_size or batch
            if count < batch:
                images = images[:count]
                detection = detection.rows(slice(None, count))
            encoding = model.encode(images, detection)
            if inspect is not None:
                inspect.update(decoder_landmarks=encoding.landmarks)
            reconstruction = model.decode(encoding.landmarks, encoding.descriptors)
            terms["recon"] = reconstruction_loss(images, reconstruction, config.loss.sigma_color,
                                                 config.loss.reconstruction_form)
        total = sum(weights[name] * terms[name] for name in LOSS_TERMS)
        return total, terms


class WeightAverage:
    """An exponential moving average of a model's parameters (Polyak averaging; not in the paper).

    After every optimiser step ``average <- d average + (1 - d) weights`` with
    ``d = min(decay, (1 + t) / (10 + t))`` at update ``t`` (counted from 0), so
    the first updates are not held at the initial weights. Buffers (batch-norm
    statistics) are not averaged: :meth:`Trainer.save` recomputes them for the
    averaged weights (G.3). The equivariance gradient is mostly warp noise
    (``docs/full_model.md``), which the average smooths out of the weights.

    >>> model = nn.Linear(1, 1, bias=False)
    >>> _ = nn.init.zeros_(model.weight)
    >>> average = WeightAverage(model, decay=0.5)
    >>> _ = nn.init.ones_(model.weight)
    >>> average.update(model)                 # d = 1 / 10: 0.1 x 0 + 0.9 x 1
    >>> round(average.model.weight.item(), 4)
    0.9
    >>> average.update(model)                 # d = 2 / 11: (2 / 11) 0.9 + (9 / 11) 1
    >>> round(average.model.weight.item(), 4)
    0.9818
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"the weight average's decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        keep = self.current_decay()
        for average, weight in zip(self.model.parameters(), model.parameters()):
            average.lerp_(weight.detach(), 1 - keep)
        self.updates += 1


class StepBatchSampler(Sampler):
    """Index batches for steps ``start_step, start_step + 1, ...`` (endless).

    Epoch ``e`` is a permutation seeded by ``(seed, e)``; a step's batch
    depends only on the step, so a resumed run reads exactly the batches the
    uninterrupted run would have. With several processes, each takes its own
    slice of the step's ``world_size * batch_size`` indices.
    """

    def __init__(self, size: int, batch_size: int, seed: int, start_step: int = 0, rank: int = 0, world_size: int = 1):
        per_step = batch_size * world_size
        if size < per_step:
            raise ValueError(f"data set has {size} images, fewer than one step needs ({per_step})")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.start_step, self.rank, self.world_size = start_step, rank, world_size
        self.steps_per_epoch = size // per_step

    def __iter__(self):
        step = self.start_step
        while True:
            epoch, position = divmod(step, self.steps_per_epoch)
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            first = (position * self.world_size + self.rank) * self.batch_size
            yield order[first:first + self.batch_size].tolist()
            step += 1

    def __len__(self):
        return sys.maxsize


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, dataset: Dataset, images: int, batch_size: int, seed: int, device,
                         view: Callable[[torch.Tensor], torch.Tensor] | None = None,
                         detector_only: bool = False) -> None:
    """Replace every BN running average by the exact mean over a random subset (G.3).

    Runs the full autoencoder (detector, descriptor and decoder hourglasses all
    have BN) in training mode with cumulative averaging, on ``images``
    training images chosen with ``seed``; the training random streams are
    untouched, so this never changes the optimisation. ``detector_only``
    (a :class:`~lmdis.model.LandmarkAutoencoder` trained without L_recon)
    recomputes the detector's statistics alone and leaves the rest as it is.
    """
    scope = model.detector if detector_only else model
    norms = [m for m in scope.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [(m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[: max(images, batch_size)]
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size].tolist()
        batch = collate_images([dataset[i] for i in indices]).to(device)
        batch = batch if view is None else view(batch)
        if detector_only:
            model.detector(model.pad(batch))
        else:
            model(batch)
    for m, (momentum, training) in zip(norms, saved):
        m.momentum = momentum
    model.train(was_training)


def _distributed_context():
    """(rank, world_size) from torchrun's environment; initialises the process group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), world_size


def log_line(message: str) -> None:
    """Print one log line and flush it, so a log file or a notebook shows it as training goes."""
    print(message, flush=True)


class Trainer:
    """Runs the optimisation of Eq. (15) on a data set.

    Args:
        config: the full :class:`Config`.
        dataset: yields dicts with ``"image"`` (C, S, S) in [0, 1].
        out_dir: where ``checkpoint.pt`` is written.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        progress: a tqdm bar (interactive) or plain log lines (papermill, CI).
        resume: continue from ``out_dir/checkpoint.pt`` when it exists.
        minutes: a training-time budget. The schedule (LR steps, lambda_recon
            raises, landmark-TPS warm-up) then runs on the share of the budget
            spent instead of the share of ``train.steps`` done: at a fraction
            f of the budget the schedule is where step f * steps would be, so
            a slower machine still reaches every decay; training ends when
            the budget or ``train.steps`` is used up. The seconds spent are
            checkpointed, so a resumed run continues the same schedule.
        init_state: model weights to start from (fine-tuning, e.g. App. E.2's
            CelebA model on AFLW): loaded at step 0 with a fresh optimiser
            and schedule; a run resumed from ``out_dir`` keeps its own.
            The state must fit ``config.model`` (errors name the tensors).

    Callbacks: ``add_callback("on_step_end", fn)`` with ``fn(trainer, terms)``
    where ``terms`` maps loss names to floats; ``"on_checkpoint"`` with
    ``fn(trainer, path)``.
    """

    def __init__(self, config: Config, dataset: Dataset, out_dir: str | Path, device: str = "auto",
                 progress: bool = True, resume: bool = False, log: Callable[[str], None] = log_line,
                 minutes: float | None = None, init_state: dict | None = None):
        self.config = config.validate()
        self.dataset = dataset
        self.out_dir = Path(out_dir)
        self.checkpoint_path = self.out_dir / "checkpoint.pt"
        self.progress = progress
        self.log = log
        self.rank, self.world_size = _distributed_context()
        self.device = select_device(device)
        if self.world_size > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        torch.manual_seed(config.train.seed)
        self.model = LandmarkAutoencoder(config.model).to(self.device)
        if config.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.objective = LandmarkObjective(self.model, config)
        self.parallel_objective = self.objective
        if self.world_size > 1:
            self.parallel_objective = nn.parallel.DistributedDataParallel(
                self.objective, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=not config.trains_decoder)  # detector-only: decoder unused
        decay = [p for n, p in self.model.named_parameters() if p.dim() > 1]
        no_decay = [p for n, p in self.model.named_parameters() if p.dim() <= 1]
        self.optimizer = torch.optim.Adam(
            [{"params": decay, "weight_decay": config.train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.train.learning_rate)
        self.use_amp = config.train.amp
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp and self.device.type == "cuda")
        self.generator = torch.Generator().manual_seed(config.train.seed * 7919 + self.rank)
        self.step = 0
        self.budget_seconds = None if minutes is None else float(minutes) * 60
        if self.budget_seconds is not None and not self.budget_seconds > 0:
            raise ValueError(f"the time budget must be positive minutes, got {minutes}")
        self.train_seconds = 0.0
        self.history: list[dict] = []
        self.callbacks: dict[str, list[Callable]] = defaultdict(list)
        self.resumed_from: int | None = None
        self.saved_step: int | None = None  # the step of the checkpoint on disk written or resumed by this trainer
        checkpoint = None
        if resume and self.checkpoint_path.exists():
            checkpoint = load_checkpoint(self.checkpoint_path, map_location=self.device)
            self._restore(checkpoint)
        if init_state is not None and self.resumed_from is None:
            load_weights(self.model, init_state, "the initial weights (init_state)")
        self.average = None
        if config.train.weight_average > 0:
            self.average = WeightAverage(self.model, config.train.weight_average)
            if checkpoint is not None and "training_model" in checkpoint:
                load_weights(self.average.model, checkpoint["model"], self.checkpoint_path)
                self.average.updates = int(checkpoint["average_updates"])

    @property
    def evaluation_model(self) -> nn.Module:
        """The model that checkpoints hold and evaluation uses: the weight average
        (``train.weight_average``) when there is one, else the trained model itself."""
        return self.model if self.average is None else self.average.model

    def add_callback(self, event: str, function: Callable) -> None:
        if event not in ("on_step_end", "on_checkpoint"):
            raise ValueError(f"unknown callback event {event!r}; expected 'on_step_end' or 'on_checkpoint'")
        self.callbacks[event].append(function)

    # -- checkpoints ---------------------------------------------------------
    def state(self) -> dict:
        """The checkpoint: a plain dict loadable with ``torch.load(weights_only=True)``.

        ``model`` is :attr:`evaluation_model`'s state, what every reader of a
        checkpoint loads; with a weight average the trained weights are
        ``training_model`` (and ``average_updates``), for an exact resume.
        """
        payload = {
            "model": self.evaluation_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "config": self.config.to_dict(),
            "step": self.step,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "train_seconds": self.train_seconds,
            "budget_seconds": self.budget_seconds,
        }
        if self.average is not None:
            payload["training_model"] = self.model.state_dict()
            payload["average_updates"] = self.average.updates
        if torch.cuda.is_available():
            payload["cuda_rng"] = torch.cuda.get_rng_state_all()
        return payload

    def _restore(self, checkpoint: dict) -> None:
        saved = Config.from_dict(checkpoint["config"])
        if saved.model != self.config.model:
            raise ValueError(f"checkpoint {self.checkpoint_path} was trained with another model config; "
                             f"use a new --out folder or the same preset")
        load_weights(self.model, checkpoint.get("training_model", checkpoint["model"]), self.checkpoint_path)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.generator.set_state(checkpoint["generator"])
        torch.set_rng_state(checkpoint["torch_rng"])
        if "cuda_rng" in checkpoint and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
        self.step = int(checkpoint["step"])
        self.history = list(checkpoint.get("history", []))
        self.train_seconds = float(checkpoint.get("train_seconds", 0.0))
        saved_budget = checkpoint.get("budget_seconds")
        if self.budget_seconds is None and saved_budget is not None:
            self.budget_seconds = float(saved_budget)
        self.resumed_from = self.saved_step = self.step

    def _kept_checkpoint(self) -> str:
        """Which checkpoint a run that stops now leaves behind, for error messages."""
        if self.saved_step is not None:
            return f"the last checkpoint {self.checkpoint_path} (step {self.saved_step}) is kept unchanged"
        if self.checkpoint_path.exists():
            return f"{self.checkpoint_path}, from before this run, is kept unchanged"
        return f"no checkpoint was written to {self.out_dir}"

    def save(self) -> Path:
        """Recompute BN statistics of :attr:`evaluation_model` (G.3), then write ``checkpoint.pt`` atomically (rank 0).

        Raises:
            FloatingPointError: a weight, batch-norm statistic or optimiser
                state is NaN or infinite (the run diverged); nothing is
                written and the previous checkpoint stays as it was.
        """
        train = self.config.train
        recompute_batch_norm(self.evaluation_model, self.dataset, train.bn_recompute_images, train.batch_size,
                             seed=train.seed + self.step, device=self.device,
                             view=lambda batch: training_view(batch, self.config),
                             detector_only=not self.config.trains_decoder)
        state = self.state()
        for part, what in (("model", "the model"), ("training_model", "the trained weights"),
                           ("optimizer", "the optimiser state")):
            found = non_finite_tensor(state[part]) if part in state else None
            if found is not None:
                raise FloatingPointError(f"training diverged by step {self.step}: {what} is not finite ({found}); "
                                         f"it was not saved, and {self._kept_checkpoint()}")
        if self.rank == 0:
            atomic_save(state, self.checkpoint_path)
            self.saved_step = self.step
            for function in self.callbacks["on_checkpoint"]:
                function(self, self.checkpoint_path)
        if self.world_size > 1:
            dist.barrier()
        return self.checkpoint_path

    # -- the loop ------------------------------------------------------------
    def _loader(self) -> DataLoader:
        sampler = StepBatchSampler(len(self.dataset), self.config.train.batch_size, self.config.train.seed,
                                   self.step, self.rank, self.world_size)
        workers = self.config.train.num_workers
        return DataLoader(self.dataset, batch_sampler=sampler, collate_fn=collate_images, num_workers=workers,
                          pin_memory=self.device.type == "cuda", persistent_workers=workers > 0)

    def schedule_step(self) -> int:
        """Where the schedule stands: the step, or with a time budget the budget's share of ``train.steps``."""
        if self.budget_seconds is None:
            return self.step
        return min(self.config.train.steps, int(self.train_seconds / self.budget_seconds * self.config.train.steps))

    def budget_spent(self) -> bool:
        return self.budget_seconds is not None and self.train_seconds >= self.budget_seconds

    def train_step(self, images: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a batch (B, C, S, S); returns the terms as floats."""
        config = self.config
        started = time.perf_counter()
        schedule = self.schedule_step()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(config, schedule)
        images = images.to(self.device, non_blocking=True)
        if config.model.channels == 3:
            images = jitter_colours(images, config.train.brightness_jitter, config.train.contrast_jitter,
                                    self.generator)
        if tuple(config.train.zoom_range) != (1.0, 1.0):
            images = random_zoom(images, config.train.zoom_range, self.generator)
        if config.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        use_landmark_tps = (schedule >= config.train.landmark_tps_warmup
                            and torch.rand(1, generator=self.generator).item() < config.train.landmark_tps_ratio)
        self.model.train()
        amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        with torch.autocast(self.device.type, dtype=amp_dtype, enabled=self.use_amp):
            total, terms = self.parallel_objective(images, schedule, self.generator, use_landmark_tps)
        values = {name: float(value.detach()) for name, value in terms.items()}
        values["total"] = float(total.detach())
        if not math.isfinite(values["total"]):
            raise FloatingPointError(f"training diverged: the loss is not finite at step {self.step} ({values}); "
                                     f"{self._kept_checkpoint()}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.average is not None:
            self.average.update(self.model)
        self.step += 1
        values["lr"] = learning_rate(config, schedule)
        values["landmark_tps"] = float(use_landmark_tps)
        self.train_seconds += time.perf_counter() - started
        return values

    def fit(self, steps: int | None = None) -> list[dict]:
        """Train until ``steps`` total steps (default: the config's), saving on the way and at the end."""
        target = self.config.train.steps if steps is None else steps
        train = self.config.train
        if self.resumed_from is not None and self.rank == 0:
            self.log(f"resumed from {self.checkpoint_path} at step {self.resumed_from}; training to step {target}")
        if self.step >= target or self.budget_spent():
            return self.history
        bar = None
        if self.progress and self.rank == 0:
            from tqdm.auto import tqdm
            bar = tqdm(total=target, initial=self.step, desc="train")
        try:
            running: dict[str, float] = defaultdict(float)
            count, started = 0, time.perf_counter()
            batches = iter(self._loader())
            while self.step < target and not self.budget_spent():
                values = self.train_step(next(batches))
                for name, value in values.items():
                    running[name] += value
                count += 1
                for function in self.callbacks["on_step_end"]:
                    function(self, values)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['total']:.3g}")
                done = self.step == target or self.budget_spent()
                if self.step % train.log_every == 0 or done:
                    entry = {"step": self.step, **{name: value / count for name, value in running.items()},
                             "seconds_per_step": (time.perf_counter() - started) / count}
                    self.history.append(entry)
                    if bar is None and self.rank == 0:
                        shown = ("total", *LOSS_TERMS, "seconds_per_step")
                        self.log(" ".join([f"step {self.step}/{target}"] + [f"{n}={entry[n]:.4g}" for n in shown]))
                    running, count, started = defaultdict(float), 0, time.perf_counter()
                if self.step % train.checkpoint_every == 0 or done:
                    self.save()
        finally:
            if bar is not None:
                bar.close()
        return self.history


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
                  device: str = "auto", progress: bool = False, log: Callable[[str], None] = log_line) -> Trainer:
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
        With ``train.weight_average`` the returned ``trainer.model`` holds the
        averaged weights (:attr:`Trainer.evaluation_model`), the finished model.
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
    if trainer.average is not None:
        trainer.model.load_state_dict(trainer.average.model.state_dict())
    trainer.model.eval()
    return trainer


def _train_in_worker(job: tuple) -> str:
    """One :func:`train_or_load` run in a worker process of one thread; returns its last log line."""
    config, dataset, tag, root, device = job
    torch.set_num_threads(1)
    dataset = pickle.loads(dataset)
    lines: list[str] = []
    train_or_load(config, dataset, tag, root, device=device, log=lines.append)
    return f"{config.name}: {lines[-1] if lines else 'trained'}"


def train_or_load_all(configs, dataset: Dataset, tag: str, root: str | Path = DEFAULT_RUNS_ROOT,
                      device: str = "auto", workers: int = 1, log: Callable[[str], None] = log_line) -> list[Trainer]:
    """:func:`train_or_load` for each of ``configs``, the runs not yet on disk trained in ``workers`` processes.

    With ``workers`` > 1 every run without a checkpoint trains in a pool of
    that many spawned processes, one thread each, and logs its last line
    here when it ends; then every run is loaded (or, unfinished, resumed
    here) by :func:`train_or_load`. A run's folder and checkpoint are the
    same whichever process trained it.

    Args:
        configs: the runs, e.g. one config per seed (:func:`lmdis.config.with_seed`).
        dataset: must pickle (it is sent to the workers as plain pickle bytes).
        workers: processes; 1 trains every run here, one after the other.
    Returns:
        one :class:`Trainer` per config, in order, models in eval mode.
    """
    configs = list(configs)
    if workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    missing = [config for config in configs if not (run_directory(config, tag, root) / "checkpoint.pt").exists()]
    if workers > 1 and len(missing) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # Plain pickle bytes: torch would send each image tensor through its own file descriptor.
        payload = pickle.dumps(dataset)
        jobs = [(config, payload, tag, str(root), device) for config in missing]
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
            for line in pool.map(_train_in_worker, jobs):
                log(line)
    return [train_or_load(config, dataset, tag, root, device=device, log=log) for config in configs]
