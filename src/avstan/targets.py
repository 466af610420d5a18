"""The emotion dimensions avstan predicts, in the column order of every label array.

One definition for the recording store's ``labels (N, 2)`` columns, the models' default
``targets`` and the scoring code. It sits at the bottom of the package (no imports).
"""

LABEL_NAMES = ("valence", "arousal")
