"""lmdis: unsupervised discovery of object landmarks as structural representations.

An implementation of Zhang et al., CVPR 2018. Coordinates everywhere are
normalised ``(x, y)`` with pixel centres at ``(u + 0.5) / W``; see
:mod:`lmdis.geometry`.

Layers, each importing only those before it (``tests/test_layering.py``
reads every import and keeps this true): the math core imports only torch,
the data imports no other part of lmdis, and the command line imports
everything while nothing imports it.

1. math core, the paper's equations in tensors: :mod:`~lmdis.geometry`,
   :mod:`~lmdis.losses`, :mod:`~lmdis.tps`, :mod:`~lmdis.networks`,
   :mod:`~lmdis.model`, and the checks of their arguments
   (:mod:`~lmdis.shapes`) (torch and the standard library only);
2. data, images and annotations from files: :mod:`lmdis.data` (nothing else
   of lmdis: no model, no config);
3. figures, drawing tensors and arrays: :mod:`~lmdis.plotting` (the data's
   image helpers only, so evaluation can draw);
4. settings: :mod:`~lmdis.config` (the math core's settings, the data sets'
   Table 6 sizes);
5. runs: checkpoint files (:mod:`~lmdis.checkpoint`), training
   (:mod:`~lmdis.train`, :mod:`~lmdis.diagnostics`), evaluation
   (:mod:`lmdis.evaluate`), inference (:mod:`~lmdis.inference`) and the
   shipped models (:mod:`lmdis.zoo`); the inference side (checkpoint,
   inference, evaluate, zoo) never imports the trainer;
6. widgets: :mod:`~lmdis.manipulation`;
7. the command line, :mod:`~lmdis.cli`, and the notebooks.
"""
__version__ = "0.1.0"
