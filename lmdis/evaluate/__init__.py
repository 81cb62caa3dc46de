"""Evaluation of discovered landmarks (Sec. 4.2-4.3, Appendix C.2 and F.1), one topic per module.

- :mod:`~lmdis.evaluate.regression`: the bias-free regression onto annotated
  landmarks, its errors and normalisers, the flip-aware fit of App. C.2, the
  mean-shape floor and the few-shot curve of App. F.1 (numpy arrays in,
  numbers out);
- :mod:`~lmdis.evaluate.attributes`: linear SVMs on landmark coordinates
  (Sec. 4.3, Table 3; digit classes on MNIST);
- :mod:`~lmdis.evaluate.benchmark`: a data set's protocol on a model: its
  splits read once, the landmarks detected, the reports and the Figure 9
  picture;
- :mod:`~lmdis.evaluate.digits`: digit models without annotations (App. B):
  landmarks on the ink against a frame-fixed control, decoded digits read
  back by a pixel classifier;
- :mod:`~lmdis.evaluate.diagnostics`: measurements outside the paper
  (content and warp tracking, the similarity projection, nearest annotated
  points, landmark metrics without annotations);
- :mod:`~lmdis.evaluate.seeds`: runs repeated under several seeds, their
  means and spreads, and which differences exceed the spread (Table 1c and
  Table 5 repeated);
- :mod:`~lmdis.evaluate.progress`: the evaluation records a training run
  prints, read back for time-to-quality curves.

Every public name is importable from here: ``from lmdis.evaluate import Benchmark``.
"""
from lmdis.evaluate import attributes, benchmark, diagnostics, digits, progress, regression, seeds
from lmdis.evaluate.attributes import (PAPER_ATTRIBUTES, SVM_C_GRID, attribute_accuracy, class_accuracy,
                                       fit_linear_svm, landmark_features)
from lmdis.evaluate.benchmark import MIN_AGGREGATE_IMAGES, Benchmark, Discovered, detect_all
from lmdis.evaluate.digits import PixelClassifier, frame_fixed, ink_at, on_stroke
from lmdis.evaluate.diagnostics import (content_tracking_gain, equivariance_error, landmark_metrics, map_mass,
                                        mean_pairwise_distance, metrics_in_pixels, nearest_annotated_points,
                                        nearest_neighbour_distance, per_axis_variance, similarity_projection,
                                        warp_tracking)
from lmdis.evaluate.progress import PROGRESS_KEYS, Progress, progress_summary, read_progress
from lmdis.evaluate.seeds import compare_to_reference, seed_summary
from lmdis.evaluate.regression import (FEW_SHOT_SIZES, FIVE_POINT_TEMPLATE, FRONTAL_FRACTION, RegressorFit,
                                       SyntheticCase, synthetic_case, apply_regressor,
                                       assigned_annotations, few_shot_curve, fit_flip_aware_regressor,
                                       fit_protocol_regressor, fit_regressor, flip_choice, frontal_view, json_ready,
                                       mean_shape_report, normalised_errors, point_errors, protocol_options,
                                       reference_lengths, regression_report, select_points, swap_left_right)

__all__ = [*regression.__all__, *attributes.__all__, *benchmark.__all__, *diagnostics.__all__,
           *seeds.__all__, *digits.__all__, *progress.__all__]
