"""Keras/TensorFlow model code; Qt-free. TensorFlow is imported lazily inside functions."""
