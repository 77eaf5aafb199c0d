"""Model builders keyed by architecture name.

`ARCHITECTURES` and `arch_defaults` need no TensorFlow, so the driver can
validate a grid without importing it; `build_model` imports Keras.
"""

from models.registry import (ARCHITECTURES, Arch, ArchError, arch_defaults, archs_of, build_model, chosen_options,
                             options_of, register, resolve)

__all__ = ["ARCHITECTURES", "Arch", "ArchError", "arch_defaults", "archs_of", "build_model", "chosen_options", "options_of",
           "register", "resolve"]
