"""K members of one architecture as one vectorised network (a pack): the fast path.

Each layer holds the members' weights side by side and applies them in one op: a dense
layer is an einsum over a `[K, in, out]` kernel, a convolution is a grouped convolution
whose groups are the members. K small networks then train as one larger, better-used one,
and the members never mix: member k's outputs, losses and gradients depend on member k's
weights and inputs only.

A pack is made from the members' own Keras models (the registry's builders, each built
under its member's seed and L2 factor), so every member starts from exactly the weights
its solo trial starts from, and `member_weights(k)` gives them back in Keras's order.
The layers the registry's classifiers are made of are supported (Flatten, Dense, Conv2D,
MaxPooling2D, Dropout); anything else is refused with PackError, naming the layer, and
trains through models.vectorized, which packs any Keras model by vectorising its own call.
This one stays where it is measured faster for the same model: the MLPs, whose einsum
layers under XLA train 1.1x the member-epochs per second of the vectorised call
(bench/RESULTS.md). Both have one interface: `forward`, `penalty`, `masked`, `still`,
`commit`, `constrain`, `load`, `member_weights`, `variables` and `state`.
"""

from __future__ import annotations

import numpy as np


class PackError(ValueError):
    """An architecture (or a layer of it) this module cannot pack."""


def _l2_factor(layer) -> float:
    reg = getattr(layer, "kernel_regularizer", None)
    if reg is None:
        return 0.0
    config = reg.get_config()
    if set(config) != {"l2"}:
        raise PackError(f"layer {layer.name}: only an L2 kernel regulariser packs, not {config}")
    return float(config["l2"])


def _same(peers, attrs) -> None:
    first = peers[0]
    for p in peers[1:]:
        for a in attrs:
            if getattr(p, a) != getattr(first, a):
                raise PackError(f"layer {first.name}: members differ in {a}")


def _need_bias(layer) -> None:
    if not layer.use_bias:
        raise PackError(f"layer {layer.name}: a layer without a bias does not pack")


def _same_activation(peers) -> None:
    names = {getattr(p.activation, "__name__", repr(p.activation)) for p in peers}
    if len(names) > 1:
        raise PackError(f"layer {peers[0].name}: members differ in activation ({', '.join(sorted(names))})")


class PackedNet:
    """The forward pass, the per-member L2 penalty and the per-member gradient mask of K
    members packed together. `variables` are Keras variables (for an optimizer)."""

    pads = pads_scoring = True  # no layer mixes a batch's images: a short batch may be padded
    state: list = []  # nothing the forward pass updates
    constants: list = []  # a TensorFlow step reads its L2 factors in place (this net is TensorFlow's only)

    def __init__(self, models: list, grouped: bool = True):
        import keras
        from keras import layers as kl

        if not models:
            raise PackError("a pack needs at least one member")
        self.size = k = len(models)
        # One grouped convolution for all members, or one convolution per member:
        # outside XLA, TensorFlow's CPU kernels have a gradient for grouped convolutions
        # only with oneDNN on, and there it is slower than per-member ones (bench/RESULTS.md).
        self.grouped = grouped
        self.input_shape = tuple(models[0].inputs[0].shape[1:])
        self.ops: list[tuple] = []  # (kind, arguments) in the network's order
        self.variables: list = []
        self._masks: list = []  # per variable: alive [K] bool -> broadcastable mask
        self._penalties: list = []  # (variable, [K] L2 factors, member reshape, summed axes)
        self._layout: list = []  # per variable: how to cut member k's slice (member_weights)
        grid = False  # activations as [B, H, W, K*C] (conv stage) or [K, B, F] (dense stage)
        channels = self.input_shape[-1]
        for i, layer in enumerate(models[0].layers):
            peers = [m.layers[i] for m in models]
            if isinstance(layer, kl.Flatten):
                self.ops.append(("flatten", grid, channels))
                grid = False
            elif isinstance(layer, kl.Dense):
                _same(peers, ("units", "use_bias"))
                _need_bias(layer)
                _same_activation(peers)
                if grid:
                    raise PackError(f"layer {layer.name}: a dense layer on an unflattened image")
                kernel = keras.Variable(np.stack([p.kernel.numpy() for p in peers]), name=f"{layer.name}_kernel")
                bias = keras.Variable(np.stack([p.bias.numpy() for p in peers])[:, None, :], name=f"{layer.name}_bias")
                self._add(kernel, lambda alive: alive[:, None, None], ("dense_kernel",))
                self._add(bias, lambda alive: alive[:, None, None], ("dense_bias",))
                self._penalize(kernel, peers, None, (1, 2))
                self.ops.append(("dense", kernel, bias, layer.activation))
            elif isinstance(layer, kl.Conv2D) and type(layer) is kl.Conv2D:
                _same(peers, ("filters", "kernel_size", "strides", "padding", "dilation_rate", "use_bias"))
                _same_activation(peers)
                _need_bias(layer)
                if layer.dilation_rate != (1, 1) or layer.groups != 1 or layer.data_format != "channels_last":
                    raise PackError(f"layer {layer.name}: only plain channels-last Conv2D layers pack")
                if not grid:
                    self.ops.append(("to_grid",))
                    grid = True
                kh, kw, cin, cout = layer.kernel.shape
                # Output channels member-major: group k (channels k*cout ... ) is member k.
                stacked = np.stack([p.kernel.numpy() for p in peers], axis=3).reshape(kh, kw, cin, k * cout)
                kernel = keras.Variable(stacked, name=f"{layer.name}_kernel")
                bias = keras.Variable(np.concatenate([p.bias.numpy() for p in peers]), name=f"{layer.name}_bias")
                self._add(kernel, lambda alive, c=cout: _repeat(alive, c), ("conv_kernel", cout))
                self._add(bias, lambda alive, c=cout: _repeat(alive, c), ("conv_bias", cout))
                self._penalize(kernel, peers, (kh, kw, cin, k, cout), (0, 1, 2, 4))
                self.ops.append(("conv", kernel, bias, layer.activation, layer.strides, layer.padding.upper()))
                channels = cout
            elif isinstance(layer, kl.MaxPooling2D):
                _same(peers, ("pool_size", "strides", "padding"))
                if not grid:
                    raise PackError(f"layer {layer.name}: pooling before any convolution")
                self.ops.append(("max_pool", layer.pool_size, layer.strides, layer.padding.upper()))
            elif isinstance(layer, kl.Dropout):
                _same(peers, ("rate",))
                if layer.noise_shape is not None:
                    raise PackError(f"layer {layer.name}: a dropout noise_shape does not pack")
                self.ops.append(("dropout", float(layer.rate), grid, channels))
            else:
                raise PackError(f"layer {layer.name} ({type(layer).__name__}) cannot be packed")
        for p in [m.layers[i] for m in models for i in range(len(m.layers))]:
            if getattr(p, "activity_regularizer", None) is not None:
                raise PackError(f"layer {p.name}: activity regularisers do not pack")
            if any(getattr(v, "constraint", None) is not None for v in p.trainable_variables):
                raise PackError(f"layer {p.name}: weight constraints do not pack")

    def _add(self, variable, mask, layout) -> None:
        self.variables.append(variable)
        self._masks.append(mask)
        self._layout.append(layout)

    def _penalize(self, kernel, peers, member_shape, axes) -> None:
        import tensorflow as tf

        factors = np.array([_l2_factor(p) for p in peers], dtype=np.float32)
        if factors.any():
            # A variable, so that a compiled step serves other members' factors (load).
            self._penalties.append((kernel, tf.Variable(factors, trainable=False), member_shape, axes))

    def load(self, models: list) -> None:
        """Take other members' weights and L2 factors in place of these, in the same variables
        (a compiled step that reads them serves the new members): models of the same
        architecture, as many, with L2 on the same layers (PackError otherwise)."""
        other = PackedNet(models, self.grouped)
        shapes = [tuple(v.shape) for v in self.variables]
        if [tuple(v.shape) for v in other.variables] != shapes or other.ops_layout() != self.ops_layout():
            raise PackError("load: members of another architecture")
        if other.penalized() != self.penalized():
            raise PackError("load: members with L2 on other layers")
        for mine, theirs in zip(self.variables, other.variables):
            mine.assign(theirs)
        for mine, theirs in zip(self._penalties, other._penalties):
            mine[1].assign(theirs[1])

    def penalized(self) -> list[int]:
        """Which of `variables` carry an L2 penalty for some member."""
        kernels = [id(p[0]) for p in self._penalties]
        return [i for i, v in enumerate(self.variables) if id(v) in kernels]

    def ops_layout(self) -> list:
        """The network's operations without their weights: what a compiled step is made of."""
        return [(op[0], *(getattr(a, "__name__", a) for a in op[3:])) if op[0] in ("dense", "conv") else op
                for op in self.ops]

    def member_weights(self, k: int) -> list[np.ndarray]:
        """Member k's weights, in the order its Keras model's `get_weights` gives them."""
        out = []
        for variable, layout in zip(self.variables, self._layout):
            value = np.asarray(variable.numpy())
            if layout[0] == "dense_kernel":
                out.append(value[k])
            elif layout[0] == "dense_bias":
                out.append(value[k, 0])
            elif layout[0] == "conv_kernel":
                cout = layout[1]
                out.append(value[..., k * cout:(k + 1) * cout])
            else:  # conv_bias
                cout = layout[1]
                out.append(value[k * cout:(k + 1) * cout])
        return out

    def penalty(self, trainable=None):
        """Each member's L2 penalty, `[K]`: sum over its regularised kernels of l2 * sum(w**2),
        as Keras's regulariser adds it to a solo model's loss. (`trainable`: the interface's;
        on TensorFlow the tape watches the variables themselves.)"""
        import tensorflow as tf

        total = tf.zeros([self.size])
        for kernel, factors, member_shape, axes in self._penalties:
            w = tf.convert_to_tensor(kernel)
            if member_shape is not None:
                w = tf.reshape(w, member_shape)
            total += tf.convert_to_tensor(factors) * tf.reduce_sum(tf.square(w), axis=axes)
        return total

    def masked(self, grads, alive):
        """Gradients with every member not in `alive` ([K] bool) set to zero: a diverged
        member stops changing and its NaNs reach no optimizer state."""
        import tensorflow as tf

        return [tf.where(mask(alive), g, tf.zeros_like(g)) for g, mask in zip(grads, self._masks)]

    def still(self, optimizer_variables, alive) -> None:
        """Zero the optimizer state (momentum, Adam's moments, accumulators) of every member
        not in `alive` ([K] bool). Its gradients are masked to zero, but state it built up
        would go on moving its weights; with zero state and zero gradient SGD, Adam, Nadam,
        RMSprop, Adadelta and Adagrad all leave them as they are. A slot variable has the
        shape of the weight it serves, and a shape here names one layout: matched by shape."""
        import tensorflow as tf

        masks = {tuple(v.shape): mask for v, mask in zip(self.variables, self._masks)}
        alive = tf.constant(np.asarray(alive, bool))
        for slot in optimizer_variables:
            mask = masks.get(tuple(slot.shape))
            if mask is not None:
                slot.assign(tf.where(mask(alive), slot, tf.zeros_like(slot)))

    def forward(self, x, training: bool = False, seeds=None, counter=None, trainable=None):
        """x `[K, B, *input_shape]` -> (outputs, no added losses `[K]`, no state): the
        interface models.vectorized.VectorizedNet shares. Training draws each member's
        dropout masks from (its seed in `seeds`, step `counter`)."""
        import tensorflow as tf

        dropout_seeds = None
        if training:
            dropout_seeds = tf.stack([tf.cast(seeds, tf.int32), tf.fill([self.size], counter)], axis=1)
        return self(x, training, dropout_seeds), tf.zeros([self.size]), []

    def commit(self, new_state, alive) -> None:
        """Nothing to keep: the network has no state beyond its weights."""
        return None  # a body beyond the docstring: AutoGraph fails on a docstring alone

    def constrain(self, alive) -> None:
        """Nothing to apply: a model with weight constraints is not packed here."""
        return None

    def __call__(self, x, training: bool = False, dropout_seeds=None):
        """x `[K, B, *input_shape]` -> outputs `[K, B, units]`. `dropout_seeds`: `[K, 2]` int32,
        one stateless seed per member for this step (each member's masks are its own,
        whatever else shares the pack)."""
        import tensorflow as tf

        k = self.size
        batch = tf.shape(x)[1]
        for n, op in enumerate(self.ops):
            kind = op[0]
            if kind == "to_grid":
                # [K, B, H, W, C] -> [B, H, W, K*C]: members as channel groups.
                x = tf.transpose(x, (1, 2, 3, 0, 4))
                shape = tf.shape(x)
                x = tf.reshape(x, [batch, shape[1], shape[2], k * self.input_shape[-1]])
            elif kind == "flatten":
                _, grid, channels = op
                if grid:
                    shape = tf.shape(x)
                    x = tf.reshape(x, [batch, shape[1], shape[2], k, channels])
                    x = tf.transpose(x, (3, 0, 1, 2, 4))  # Keras flattens (h, w, c) in row-major order
                x = tf.reshape(x, [k, batch, -1])
            elif kind == "dense":
                _, kernel, bias, activation = op
                x = activation(tf.einsum("kbi,kio->kbo", x, kernel) + bias)
            elif kind == "conv":
                _, kernel, bias, activation, strides, padding = op
                if self.grouped or k == 1:
                    x = tf.nn.conv2d(x, kernel, strides, padding)
                else:
                    x = tf.concat([tf.nn.conv2d(xm, km, strides, padding) for xm, km in
                                   zip(tf.split(x, k, axis=-1), tf.split(kernel, k, axis=-1))], axis=-1)
                x = activation(x + bias)
            elif kind == "max_pool":
                _, size, strides, padding = op
                x = tf.nn.max_pool2d(x, size, strides, padding)
            elif kind == "dropout" and training and op[1] > 0:
                _, rate, grid, channels = op
                x = _dropout(x, rate, grid, channels, k, dropout_seeds, n)
        return x


def _repeat(alive, times: int):
    import tensorflow as tf

    return tf.repeat(alive, times)


def _dropout(x, rate: float, grid: bool, channels: int, k: int, seeds, salt: int):
    """Keras's inverted dropout with each member's mask drawn from its own seed.

    The layer's position is folded into the member's step seed: added to the step counter
    instead, layer a at step c + d would draw layer a + d's mask of step c."""
    import tensorflow as tf

    if grid:
        shape = tf.shape(x)
        member_shape = tf.stack([shape[0], shape[1], shape[2], channels])
        masks = [tf.random.stateless_uniform(member_shape, tf.random.fold_in(seeds[m], salt)) for m in range(k)]
        keep = tf.concat(masks, axis=-1) >= rate
    else:
        member_shape = tf.shape(x)[1:]
        keep = tf.stack([tf.random.stateless_uniform(member_shape, tf.random.fold_in(seeds[m], salt)) for m in range(k)]) >= rate
    return tf.where(keep, x / (1.0 - rate), tf.zeros_like(x))
