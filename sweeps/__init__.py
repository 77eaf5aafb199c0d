"""noisesweep's sweep runner: data, noise, grids, the Tune trainable and the CLI."""

import os

# TensorFlow's C++ info lines (oneDNN, CUDA probing) drown the progress a
# user reads; warnings and errors still show. A user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's oneDNN CPU kernels: 1.5x faster training of the conv nets on this project's
# 2-core AMD (AVX2) machines, where TensorFlow leaves them off by default (it turns them on
# only on CPUs with AVX-512 VNNI and newer); the XLA-compiled packs of MLPs gain 5-9 %
# (bench/RESULTS.md). Runs stay deterministic; results differ from oneDNN-off ones by
# float rounding. Every row says which it was (`onednn`). A user's own setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
