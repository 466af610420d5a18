"""avstan: continuous valence/arousal recognition from face video and speech.

Implements the spatiotemporal-attention 3D-CNN of Lee et al. (ICASSP 2018) and its
audio-visual extension (ACM MM 2018 workshop). Data flows one way:
``data -> models -> training | evaluation -> experiments | apply -> cli``, over a few
bottom modules every layer may use (errors, targets, io, typed_config, metrics); see
docs/architecture.md and tests/test_layering.py, which holds the code to it.
"""

from avstan.errors import AvstanError

__version__ = "0.1.0"
__all__ = ["AvstanError", "__version__"]
