"""Training beyond one device: tf.distribute strategies for `vol3d train --strategy`.

``mirrored``: tf.distribute.MirroredStrategy, synchronous data parallelism over the GPUs of
one machine (variables mirrored, gradients all-reduced each step; the batch size is the
global one, split between replicas). Without a GPU it mirrors over the logical CPU devices,
which is how it is tested: one CPU split into two with
``tf.config.set_logical_device_configuration`` before TensorFlow starts.
Keras 3 on the TensorFlow backend builds and compiles a model under ``strategy.scope()``
and ``fit`` distributes the batches.

Several machines are not offered: see "Training on more than one machine" in the README for
what upstream supports and why (MultiWorkerMirroredStrategy with Keras 3 is unreliable).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

STRATEGIES = ("default", "mirrored")


@dataclass
class StrategyInfo:
    name: str
    replicas: int = 1
    devices: list[str] = field(default_factory=list)
    strategy: object = None  # the tf.distribute strategy, None for the default

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def record(self) -> dict:
        """What the model card keeps of it."""
        return {"name": self.name, "replicas": self.replicas, "devices": list(self.devices)}


def make_strategy(name: str = "default", tf=None) -> StrategyInfo:
    """The strategy ``name`` over this machine's devices (GPUs, else logical CPUs)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose {', '.join(STRATEGIES)}")
    if name == "default":
        return StrategyInfo("default")
    if tf is None:
        import tensorflow as tf
    devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    if not devices:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices=devices)
    return StrategyInfo(name, int(strategy.num_replicas_in_sync), devices, strategy)
