"""noisesweep's sweep runner: data, noise, grids, the Tune trainable and the CLI."""

import os

# TensorFlow's C++ info lines (oneDNN, CUDA probing) drown the progress a
# user reads; warnings and errors still show. A user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
