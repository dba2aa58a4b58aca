"""Evaluation: metrics written once, bootstrap intervals, strata, and the predictions table.

Every evaluation task writes a predictions table (:mod:`dermkit.evaluate.predictions`); the
metrics, strata and reports read it, so nothing has to re-run a model to redo a cheap step.
"""
