"""Model builders keyed by architecture name.

`ARCHITECTURES` and `arch_defaults` need no TensorFlow, so the driver can
validate a grid without importing it; `build_model` imports Keras.
"""

from models.registry import ARCHITECTURES, DENOISERS, Arch, arch_defaults, build_denoiser, build_model

__all__ = ["ARCHITECTURES", "DENOISERS", "Arch", "arch_defaults", "build_denoiser", "build_model"]
