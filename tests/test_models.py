import keras
import pytest

from models import arch_defaults, archs_of, build_model

# Hand counts from the layer lists in the seeds (weights + biases, layer by layer).
EXPECTED_PARAMS = {
    # seed 001 2a states it: 784*64 + 64*64 + 64*10 + (64 + 64 + 10)
    "mlp64": 784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10,
    # seed 001 2d: Dense500-Dense300-Dense10
    "mlp500_300": 784 * 500 + 500 + 500 * 300 + 300 + 300 * 10 + 10,
    # seed 001 3a: conv32 3x3 (26) pool (13) conv64 (11) pool (5) conv64 (3) -> 576 -> 64 -> 10
    "cnn": (9 * 32 + 32) + (9 * 32 * 64 + 64) + (9 * 64 * 64 + 64) + (576 * 64 + 64) + (64 * 10 + 10),
    # seed 000: conv32 (26) conv64 (24) pool (12) -> 9216 -> 128 -> 10
    "cnn_keras": (9 * 32 + 32) + (9 * 32 * 64 + 64) + (12 * 12 * 64 * 128 + 128) + (128 * 10 + 10),
    # seed 003's classifier: Dense256-Dense256-Dense10
    "mlp256": 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10,
}


def test_seed_001_states_55050_for_mlp64():
    assert EXPECTED_PARAMS["mlp64"] == 55_050


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_count_matches_seed(name):
    assert build_model(name).count_params() == EXPECTED_PARAMS[name]


def test_every_registered_architecture_is_tested():
    from sweeps.model_check import of_ones_own

    # The project's own: a test module may have registered models of its own (tests/user_models.py).
    built_in = {a for a in archs_of("classify") if not of_ones_own(a)}
    assert built_in == set(EXPECTED_PARAMS)


def weighted_layers(model):
    return [layer for layer in model.layers if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_l2_on_every_hidden_kernel_and_not_the_output(name):
    layers = weighted_layers(build_model(name, l2=1e-4))
    for layer in layers[:-1]:
        assert isinstance(layer.kernel_regularizer, keras.regularizers.L2), layer.name
        assert layer.kernel_regularizer.l2 == pytest.approx(1e-4)
    assert layers[-1].kernel_regularizer is None
    assert all(layer.kernel_regularizer is None for layer in weighted_layers(build_model(name, l2=0.0)))


def test_l2_adds_the_weight_penalty_to_the_loss():
    import numpy as np

    model = build_model("mlp64", l2=1e-3)
    model(np.zeros((1, 28, 28, 1), np.float32))
    hidden = weighted_layers(model)[:-1]
    expected = sum(1e-3 * float(np.sum(np.square(layer.kernel.numpy()))) for layer in hidden)
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)


def test_seed_training_defaults():
    assert arch_defaults("mlp500_300") == {"optimizer": "sgd", "lr": 0.1, "batch_size": 128, "epochs": 40}
    assert arch_defaults("cnn_keras")["optimizer"] == "adadelta"
    with pytest.raises(KeyError, match="unknown architecture 'resnet'"):
        build_model("resnet")
