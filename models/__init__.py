"""Model builders keyed by architecture name.

`ARCHITECTURES` and `arch_defaults` need no TensorFlow, so the driver can
validate a grid without importing it; `build_model` imports Keras.
"""

from models.registry import ARCHITECTURES, Arch, arch_defaults, archs_of, build_model, options_of, register

__all__ = ["ARCHITECTURES", "Arch", "arch_defaults", "archs_of", "build_model", "options_of", "register"]
