"""Read trial logs into tables and figures, without Ray or TensorFlow."""
