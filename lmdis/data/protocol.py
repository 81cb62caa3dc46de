"""What a dataset must say for the regression protocol of Sec. 4.2 (and App. C.2).

Each dataset module under :mod:`lmdis.data` defines one :class:`Protocol`: the
names of its annotated points, the splits used to fit and test the
regressor, which points are evaluated, and what the error is divided by.
:mod:`lmdis.evaluate` reads only this, so a new dataset needs no change
there.
"""
from __future__ import annotations

from dataclasses import dataclass

NORMALISERS = ("points", "image")


@dataclass(frozen=True)
class Protocol:
    """The evaluation protocol of one dataset.

    Attributes:
        dataset: the name ``open_dataset`` knows it by.
        point_names: the annotated points, in the order datasets yield them.
        fit_split, test_split: the labelled split the regressor is fitted on,
            and the one it is tested on.
        normaliser: ``"points"`` (distance between ``reference_points``:
            inter-ocular for faces, bi-wheel for cars) or ``"image"`` (the
            image side: Human3.6M reports % of the image size).
        reference_points: two indices into ``point_names`` for ``"points"``.
        evaluated_points: indices into ``point_names`` that are regressed
            and scored (cat heads: 7 of 9, not the ears); ``None`` = all.
        flip_pairs: left/right index pairs into ``point_names`` for the
            flip-aware protocol of Appendix C.2 (Human3.6M); empty = plain.

    The sizes the data set is prepared at (Table 6) are its module's
    ``IMAGE_SIZE`` and ``PADDED_SIZE``.
    """

    dataset: str
    point_names: tuple[str, ...]
    fit_split: str
    test_split: str
    normaliser: str = "points"
    reference_points: tuple[int, int] | None = (0, 1)
    evaluated_points: tuple[int, ...] | None = None
    flip_pairs: tuple[tuple[int, int], ...] = ()

    def __post_init__(self):
        if self.normaliser not in NORMALISERS:
            raise ValueError(f"{self.dataset}: normaliser {self.normaliser!r} not in {NORMALISERS}")
        if self.normaliser == "points" and (self.reference_points is None or len(self.reference_points) != 2):
            raise ValueError(f"{self.dataset}: normaliser 'points' needs two reference_points")
        count = len(self.point_names)
        indices = list(self.reference_points or ()) + list(self.evaluated_points or ())
        indices += [i for pair in self.flip_pairs for i in pair]
        bad = [i for i in indices if not 0 <= i < count]
        if bad:
            raise ValueError(f"{self.dataset}: point indices {bad} outside 0..{count - 1}")
