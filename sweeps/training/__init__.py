"""Training a pack, the half of noisesweep that runs inside a Ray Tune trial (the rest of
`sweeps/` plans and drives a sweep on the driver). One state, a pure step, one loop,
observers that only read:

- `trainable`: the Tune trainable, which configures TensorFlow and trains its config or
  pack of configs through the loop;
- `pack`: `Pack`, the one owner of a pack's state: its description (`spec`), its compiled
  part (`engine`) and its members' rows and stops (`ledger`);
- `loop`: every transition of an epoch, in order, then the observers (`reporting`);
- `worker`: what a Ray worker keeps between trials (its last engine);
- `feeds`: the members' data, from which the compiled step makes its batches;
- `early_stopping`: Keras's rule as plain state, one per member;
- `reporting`, `tensorboard`: the members' files and Tune's row.

Nothing here is imported at the package's import: the driver reads what it needs of the
tasks without TensorFlow.
"""
