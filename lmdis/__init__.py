"""lmdis: unsupervised discovery of object landmarks as structural representations.

An implementation of Zhang et al., CVPR 2018. Coordinates everywhere are
normalised ``(x, y)`` with pixel centres at ``(u + 0.5) / W``; see
:mod:`lmdis.geometry`.
"""
__version__ = "0.1.0"
