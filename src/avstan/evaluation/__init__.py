"""Evaluation: metrics (RMSE, CC, CCC, attention-in-mask), post-processing, tables, plots.

Pure numerical functions live in :mod:`avstan.evaluation.metrics`; files are written only by
:mod:`~avstan.evaluation.plots` and :mod:`~avstan.evaluation.tables`, atomically.
"""
