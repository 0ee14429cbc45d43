"""kcompile.frontend: the Keras-style API (tensors, layers, models, tracing, saving, training)."""
