"""Where the model runs: the GPU when there is one (memory growth on, so TensorFlow shares
the card with the 3-D view), else the CPU; optional mixed precision."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class DeviceInfo:
    kind: str  # "GPU" or "CPU"
    description: str  # one line for the status bar
    gpus: list[str] = field(default_factory=list)
    mixed_precision: bool = False


def configure_device(mixed_precision: bool = False, tf=None) -> DeviceInfo:
    """Configure TensorFlow once, before any model is built. ``tf`` may be injected (tests)."""
    if tf is None:
        import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    names = []
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):
            pass  # already initialised: growth can only be set before first use
        try:
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        except Exception:
            names.append(gpu.name)
    if mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16" if gpus else "mixed_bfloat16")
    if gpus:
        desc = "GPU: " + ", ".join(names) + (" (mixed precision)" if mixed_precision else "")
        return DeviceInfo("GPU", desc, names, mixed_precision)
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count() or 1
    desc = f"CPU ({threads} threads)" + (" (mixed precision)" if mixed_precision else "")
    return DeviceInfo("CPU", desc, [], mixed_precision)
