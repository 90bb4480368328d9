"""Qt-free, TensorFlow-free core: volumes, readers, studies, windowing, resampling."""
