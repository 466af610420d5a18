"""Evaluation: inference over recordings, the scoring timeline, scores, the AVEC
post-processing chain and audio baseline, and the reports (tables, plots, HTML).

The metrics themselves (RMSE, CC, CCC, attention-in-mask) live at the bottom of the
package, :mod:`avstan.metrics`, so training logs with the same code; files are written
only by :mod:`~avstan.evaluation.reports`, :mod:`~avstan.evaluation.plots`,
:mod:`~avstan.evaluation.tables` and :mod:`~avstan.evaluation.html_report`, through
:mod:`avstan.io` (atomically). This package reads model files through
``models.model_file.TrainedModel`` and imports nothing from ``training``.
"""
