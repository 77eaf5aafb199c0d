"""Pieces every builder shares."""

import keras


def l2_regularizer(l2: float):
    """Kernel regularizer for hidden layers: None when the factor is 0, so an
    unregularised model carries no zero-weight loss term."""
    return keras.regularizers.l2(l2) if l2 else None
