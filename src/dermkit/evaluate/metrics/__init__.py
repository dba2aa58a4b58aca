"""The metric collection: a predictions table scored with bootstrap intervals and strata.

The functional metrics it computes live in :mod:`dermkit.metrics`, below ``train`` and
``evaluate``, so training scores its validation set with the same code.
"""
