"""Recipes that train and evaluate several models: the demo, a paper table, and the one
train-then-calibrate step (``calibration.train_and_calibrate``) they and the CLI share.

Imports data, models, training and evaluation; nothing below imports this package.
"""
