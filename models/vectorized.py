"""K members of any Keras 3 model as one pack, by vectorising the model's own call.

One template model (the first member's, built by its own builder) gives the computation;
the members' trainable and non-trainable variables are stacked `[K, ...]`, and the
template's `stateless_call` is vectorised over them (`keras.ops.vectorized_map`:
`tf.vectorized_map` on TensorFlow, `jax.vmap` on JAX). Whatever the
model holds (BatchNormalization, residual `Add`, depthwise convolutions, any layer Keras
has), member k's outputs, losses, gradients and updated state (BatchNormalization's
moving statistics) depend on member k's variables and inputs only.

What differs between members outside the weights is carried here too:
- each member's weight regularisers (members of a pack differ in L2 although the template
  carries one): the template's are taken off and each member's penalty is computed from
  its own factors (`penalty`);
- each member's random draws (dropout of any kind, GaussianNoise...): every seed generator
  of the model starts each step from (member seed, generator, step) alone, so a member draws
  the same masks packed or alone, and again after a restart;
- weight constraints, applied to each member after the optimizer's step (`constrain`).

A model it cannot hold (members of different structure, a regulariser that differs other
than in its L1/L2 factors) is refused with models.packed.PackError, naming the layer.
"""

from __future__ import annotations

import numpy as np

from models.packed import PackError

# A member's seed generator j of G starts step c at counter (c * G + j) * STRIDE, beside its
# seed: room for STRIDE draws of one generator in a step (a layer called several times)
# before the next generator's or step's. Keras takes both numbers modulo 2**31 - 2 before
# drawing, so they stay below it: 2**27 / G steps (a million for 128 generators).
STRIDE = 16
_LINEAR = ("L1", "L2", "L1L2")  # regularisers that are a factor times a norm: packed by factor


def _is_generator(variable) -> bool:
    return variable.path.endswith("seed_generator_state")


def _layer_of(model, variable) -> str:
    return variable.path.split("/")[0] if "/" in variable.path else model.name


def _structure(model) -> list:
    """What a pack's members must share: each layer's type and configuration (less its
    name and weight regularisers, which members may differ in) and every variable's shape."""
    out = []
    for layer in model._flatten_layers(include_self=False):
        # A nested model (a VAE's encoder) is compared by its own layers, which come next:
        # its config repeats theirs, names and regularisers included.
        nested = any(True for _ in layer._flatten_layers(include_self=False))
        config = layer.get_config() if hasattr(layer, "get_config") and not nested else {}
        config = {k: v for k, v in config.items()
                  if k != "name" and not (k.endswith("regularizer") and k != "activity_regularizer")}
        out.append((type(layer).__name__, repr(sorted(config.items(), key=lambda kv: kv[0]))))
    out.append([tuple(v.shape) for v in model.trainable_variables])
    out.append([(tuple(v.shape), str(v.dtype)) for v in model.non_trainable_variables])
    return out


def _factors(model, variable) -> tuple[float, float] | object | None:
    """A weight's regulariser as (l1, l2) factors, the regulariser itself where it is not
    a factor times a norm, or None."""
    reg = variable.regularizer
    if reg is None:
        return None
    if type(reg).__name__ in _LINEAR and type(reg).__module__.startswith("keras"):
        config = reg.get_config()
        return float(config.get("l1", 0.0) or 0.0), float(config.get("l2", 0.0) or 0.0)
    return reg


class VectorizedNet:
    """A pack of K Keras models of one structure: stacked variables (`variables` for the
    optimizer, `state` for what the call updates), the vectorised call (`forward`), each
    member's weight penalty, gradient mask and weights."""


    def __init__(self, models: list, vectorize: bool = True):
        import keras

        from models.backends import variable

        if not models:
            raise PackError("a pack needs at least one member")
        self.size = len(models)
        self.template = template = models[0]
        # False: the template's call member by member, unrolled in one step. A vectorised
        # convolution rounds otherwise than a lone model's (packed and lone conv nets ended
        # up to 10 of 1,000 validation images apart mid-training), and on a CPU it is no
        # faster than the members alone (bench/RESULTS.md): sweeps.training.engine vectorises
        # conv nets only on a GPU.
        self.vectorize = vectorize
        if len(template.inputs) != 1 or len(template.outputs) != 1:
            raise PackError(f"model {template.name}: a pack's model takes one input and gives one output")
        self.input_shape = tuple(template.inputs[0].shape[1:])
        # Whether a short batch may be padded to the one compiled shape (and the padding
        # masked out of the loss): not where a loss the model adds is a mean over the batch
        # (an activity regulariser; any layer Keras does not ship may add one), and in
        # training not where a layer mixes a batch's images either (BatchNormalization).
        layers = list(template._flatten_layers(include_self=False))
        own = any(not type(layer).__module__.startswith("keras.") for layer in layers)
        adds = own or any(getattr(layer, "activity_regularizer", None) is not None
                          or type(layer).__name__ == "ActivityRegularization" for layer in layers)
        self.pads_scoring = not adds
        self.pads = not adds and not any("BatchNorm" in type(layer).__name__ for layer in layers)
        self._structure = _structure(template)
        for m in models[1:]:
            self._check_like(m)
        trainable = template.trainable_variables
        self.variables = [keras.Variable(np.stack([np.asarray(m.trainable_variables[i]) for m in models]),
                                         name=v.path.replace("/", "_")) for i, v in enumerate(trainable)]
        self.state = [keras.Variable(np.stack([np.asarray(m.non_trainable_variables[i]) for m in models]),
                                     dtype=v.dtype, trainable=False, name=v.path.replace("/", "_"))
                      for i, v in enumerate(template.non_trainable_variables)]
        self._generators = [i for i, v in enumerate(template.non_trainable_variables) if _is_generator(v)]
        self.draws = bool(self._generators)  # whether training draws random numbers (dropout...)
        # Where get_weights finds each weight: ("t", i) trainable, ("n", i) state.
        where = {id(v): ("t", i) for i, v in enumerate(trainable)}
        where.update({id(v): ("n", i) for i, v in enumerate(template.non_trainable_variables)})
        self._order = [where[id(v)] for v in template.weights if id(v) in where]
        self._constraints = [(i, v.constraint) for i, v in enumerate(trainable)
                             if getattr(v, "constraint", None) is not None]
        linear, custom = self._regularisers(models)
        self._linear = {i: variable(f, np.float32) for i, f in linear.items()}
        self.constants = list(self._linear.values())  # what a step reads besides weights and state
        self._custom = custom
        for v in trainable:
            v.regularizer = None  # each member's own penalty is added in `penalty`

    def _check_like(self, model) -> None:
        mine, theirs = self._structure, _structure(model)
        if len(mine) != len(theirs):
            raise PackError(f"model {model.name}: members of another structure ({len(theirs) - 2} layers, "
                            f"not {len(mine) - 2})")
        for a, b in zip(mine[:-2], theirs[:-2]):
            if a != b:
                raise PackError(f"layer {a[0]}: members differ in its configuration")
        if mine[-2:] != theirs[-2:]:
            raise PackError(f"model {model.name}: members' variables differ in shape")

    def _regularisers(self, models):
        """Per regularised weight: the members' (l1, l2) factors `[2, K]`, or (for a
        regulariser that is not a factor times a norm, the same for all) the regulariser."""
        linear, custom = {}, []
        for i, v in enumerate(self.template.trainable_variables):
            regs = [_factors(m, m.trainable_variables[i]) for m in models]
            if all(r is None for r in regs):
                continue
            layer = _layer_of(self.template, v)
            if all(r is None or isinstance(r, tuple) for r in regs):
                linear[i] = np.array([r or (0.0, 0.0) for r in regs], np.float32).T
                continue
            configs = {_config(r) for r in regs}
            if len(configs) > 1:
                raise PackError(f"layer {layer}: members differ in a regulariser other than L1/L2 factors")
            custom.append((i, regs[0]))
        return linear, custom

    def load(self, models: list) -> None:
        """Take other members' weights, state and regularisers in place of these, in
        the same variables (a compiled step that reads them serves the new members)."""
        if len(models) != self.size:
            raise PackError(f"load: {len(models)} members, not {self.size}")
        for m in models:
            self._check_like(m)
        linear, custom = self._regularisers(models)
        if set(linear) != set(self._linear) or [(i, _config(r)) for i, r in custom] != \
                [(i, _config(r)) for i, r in self._custom]:
            raise PackError("load: members with regularisers on other weights, or other ones")
        for i, v in enumerate(self.variables):
            v.assign(np.stack([np.asarray(m.trainable_variables[i]) for m in models]))
        for i, v in enumerate(self.state):
            v.assign(np.stack([np.asarray(m.non_trainable_variables[i]) for m in models]))
        for i, factors in linear.items():
            self._linear[i].assign(factors)

    def member_weights(self, k: int) -> list[np.ndarray]:
        """Member k's weights, in the order its Keras model's `get_weights` gives them."""
        return [np.asarray((self.variables if kind == "t" else self.state)[i].numpy()[k]) for kind, i in self._order]

    def set_member_weights(self, k: int, weights: list) -> None:
        """Member k's weights from a list in `get_weights`'s order (a solo Keras checkpoint)."""
        for (kind, i), w in zip(self._order, weights):
            v = (self.variables if kind == "t" else self.state)[i]
            v.assign(np.concatenate([v.numpy()[:k], np.asarray(w)[None], v.numpy()[k + 1:]]))

    # -- in the compiled step -----------------------------------------------------------
    def forward(self, x, training: bool = False, seeds=None, counter=None, trainable=None):
        """x `[K, B, *input_shape]` -> (outputs `[K, B, ...]`, each member's losses the model
        adds itself `[K]` (activity regularisers, a VAE's KL term), its updated state).
        Training draws from `seeds` (`[K]`, the members') at step `counter`. `trainable`:
        the stacked weights to call with (what gradients are taken of), default `variables`."""
        from keras import ops

        k = self.size
        state = [ops.convert_to_tensor(v) for v in self.state]
        if training and self._generators:
            g = len(self._generators)
            for j, i in enumerate(self._generators):
                dtype = self.state[i].dtype
                start = ops.full([k], (ops.cast(counter, dtype) * g + j) * STRIDE)
                state[i] = ops.stack([ops.cast(seeds, dtype), start], axis=1)
        trainable = [ops.convert_to_tensor(v) for v in (self.variables if trainable is None else trainable)]
        template = self.template

        def one(args):
            t, n, xk = args
            out, new, losses = template.stateless_call(t, n, xk, training=training, return_losses=True)
            # A list, empty for a model that adds no loss: a constant has no member axis.
            return out, new, [sum(ops.cast(loss, "float32") for loss in losses)] if losses else []

        if k == 1 or not self.vectorize:
            # The model's own call, member by member, as a solo Keras step runs it.
            calls = [one(([t[m] for t in trainable], [n[m] for n in state], x[m])) for m in range(k)]
            out = ops.stack([c[0] for c in calls])
            new = [ops.stack([c[1][i] for c in calls]) for i in range(len(state))]
            extra = [ops.stack([c[2][0] for c in calls])] if calls[0][2] else []
        else:
            out, new, extra = ops.vectorized_map(one, (trainable, state, x))
        return out, extra[0] if extra else ops.zeros([k]), new

    def commit(self, new_state, alive) -> None:
        """Keep the state a training call computed, for the members in `alive` ([K] bool):
        a frozen member's BatchNormalization statistics stay those of its last epoch."""
        from keras import ops

        for i, (v, new) in enumerate(zip(self.state, new_state)):
            if i not in self._generators:
                v.assign(ops.where(_member_mask(alive, len(v.shape)), new, ops.convert_to_tensor(v)))

    def constrain(self, alive) -> None:
        """Each member's weight constraints, applied after the optimizer's step (as Keras's
        optimizer applies a solo model's), to the members in `alive` ([K] bool): a frozen
        member's weights stay exactly as they were."""
        from keras import ops

        for i, constraint in self._constraints:
            w = ops.convert_to_tensor(self.variables[i])
            self.variables[i].assign(ops.where(_member_mask(alive, len(w.shape)), ops.vectorized_map(constraint, w), w))

    def penalty(self, trainable=None):
        """Each member's weight penalty, `[K]`: its own regularisers on its own weights, as
        Keras adds them to a solo model's loss (l1 * sum|w| + l2 * sum(w**2)). `trainable`:
        as in `forward`."""
        from keras import ops

        weights = self.variables if trainable is None else trainable
        total = ops.zeros([self.size])
        for i, factors in self._linear.items():
            w = ops.convert_to_tensor(weights[i])
            axes = tuple(range(1, len(w.shape)))
            f = ops.convert_to_tensor(factors)
            total += f[0] * ops.sum(ops.abs(w), axis=axes) + f[1] * ops.sum(ops.square(w), axis=axes)
        for i, reg in self._custom:
            total += ops.vectorized_map(lambda w: ops.cast(reg(w), "float32"), ops.convert_to_tensor(weights[i]))
        return total

    def masked(self, grads, alive):
        """Gradients with every member not in `alive` ([K] bool) set to zero."""
        from keras import ops

        return [ops.where(_member_mask(alive, len(g.shape)), g, ops.zeros_like(g)) for g in grads]

    def still(self, optimizer_variables, alive) -> None:
        """Zero the optimizer state of every member not in `alive` ([K] bool): every slot
        variable is stacked like the weight it serves, members first."""
        from keras import ops

        shapes = {tuple(v.shape) for v in self.variables}
        alive = np.asarray(alive, bool)
        for slot in optimizer_variables:
            if tuple(slot.shape) in shapes:
                value = ops.convert_to_tensor(slot)
                slot.assign(ops.where(_member_mask(alive, len(slot.shape)), value, ops.zeros_like(value)))


def _config(regularizer) -> str:
    return repr((type(regularizer).__name__, regularizer.get_config() if hasattr(regularizer, "get_config")
                 else id(regularizer)))


def _member_mask(alive, rank: int):
    from keras import ops

    return ops.reshape(alive, (-1,) + (1,) * (rank - 1))
