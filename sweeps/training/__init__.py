"""Training a pack, the half of noisesweep that runs inside a Ray Tune trial (the rest of
`sweeps/` plans and drives a sweep on the driver).

- `trainable`: the Tune trainable, which configures TensorFlow and trains its config or
  pack of configs;
- `pack`: `Pack`, K member configs of any task trained as one, each exactly as alone
  (epochs, divergence, early stopping, a member's end, checkpoints);
- `engine`: a pack's variables and compiled steps, kept by a worker from pack to pack;
- `batches`: the members' batches, made inside the compiled step from the uint8 dataset;
- `early_stopping`: Keras's rule as plain state, one per member (the grid checks its
  monitors on the driver too);
- `reporting`, `tensorboard`: each epoch's rows to Tune and the members' files.

Nothing here is imported at the package's import: the driver reads `early_stopping`
without TensorFlow.
"""
