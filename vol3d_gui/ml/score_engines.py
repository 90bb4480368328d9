"""Engines for `vol3d score`: where batches of items are scored. Each engine is a generator
``engine(model_path, batches, workers, address)`` yielding lists of rows as batches finish
(in any order); every worker loads the model once and keeps it.

- ``local``: a process pool (concurrent.futures, spawn: TensorFlow does not survive fork),
  TensorFlow's threads shared out between the workers.
- ``ray``: a pool of Ray actors (ray.util.ActorPool), one model each, with a GPU share per
  actor where the cluster has GPUs; a local Ray instance (``ray.init(num_cpus=workers)``)
  or the cluster at ``address``. The model travels to the actors as bytes, so cluster
  nodes need the volumes' paths, not the model's. Ray is an optional extra: imported here
  only when this engine runs.

A model that cannot be loaded stops the run (a ``Vol3dError`` with the reason), unlike an
item that cannot be read, which is a row. Exceptions cross process boundaries as the
one-argument Vol3dError: the typed subclasses need two arguments and do not unpickle.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from vol3d_gui.core.errors import Vol3dError

# a small object store: rows and item lists are all that travel through it
RAY_OBJECT_STORE_BYTES = 200 * 2**20


# --- in a worker -------------------------------------------------------------------------------
class _Scorer:
    """Holds one loaded bundle; ``score(batch)`` returns its rows. A Ray actor or, in the
    local engine, one per worker process."""

    def __init__(self, model_path: str | None = None, threads: int | None = None,
                 model_files: tuple[bytes, bytes] | None = None):
        self.error = None
        try:
            import tensorflow as tf

            if threads:  # before the runtime starts: several workers share the cores
                tf.config.threading.set_intra_op_parallelism_threads(int(threads))
                tf.config.threading.set_inter_op_parallelism_threads(1)
            from vol3d_gui.ml.bundle import load_bundle

            if model_files is not None:  # a Ray actor, maybe on another node
                folder = Path(tempfile.mkdtemp(prefix="vol3d-model-"))
                (folder / "model.keras").write_bytes(model_files[0])
                (folder / "model.json").write_bytes(model_files[1])
                model_path = str(folder / "model.keras")
            self.bundle = load_bundle(model_path)
        except Exception as exc:  # reported on the first batch, as one clean error
            self.error = f"cannot load the model in a worker: {exc}"

    def score(self, batch: list[dict]) -> list[dict]:
        from vol3d_gui.ml.scoring import ScoreItem, score_batch

        if self.error:
            raise Vol3dError(self.error)
        return score_batch(self.bundle, [ScoreItem(**d) for d in batch])


_WORKER: _Scorer | None = None


def _init_worker(model_path: str, threads: int) -> None:
    global _WORKER
    _WORKER = _Scorer(model_path, threads)


def _score_in_worker(batch: list[dict]) -> list[dict]:
    return _WORKER.score(batch)


# --- engines ---------------------------------------------------------------------------------
def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def local_engine(model_path, batches, workers=None, address=None):
    import multiprocessing

    if address:
        raise Vol3dError("--address is for the ray engine; the local engine runs on this machine")
    workers = workers or default_workers()
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = multiprocessing.get_context("spawn")
    todo = iter(batches)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(str(model_path), threads)) as pool:
        # a bounded window of batches in flight: an archive's list is never queued at once
        pending = {pool.submit(_score_in_worker, b) for _, b in zip(range(2 * workers), todo)}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    try:
                        rows = fut.result()
                    except BrokenProcessPool as exc:  # a worker killed (out of memory, a crash)
                        raise Vol3dError(f"a worker process died ({exc}); the rows written so far are "
                                         "kept: run the same command again to go on") from exc
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.add(pool.submit(_score_in_worker, nxt))
                    yield rows
        finally:
            for fut in pending:
                fut.cancel()


def ray_init_args(workers: int | None, address: str | None) -> dict:
    """ray.init arguments: no dashboard, nothing downloaded; locally a small object store and
    the package on the workers' path (a cluster's nodes have it installed)."""
    args = {"include_dashboard": False, "log_to_driver": False}
    if address:
        return {**args, "address": address}
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    return {**args, "num_cpus": workers or default_workers(), "object_store_memory": RAY_OBJECT_STORE_BYTES,
            "runtime_env": {"env_vars": {"PYTHONPATH": path}}}


def actor_resources(cluster: dict, n_actors: int) -> dict:
    """Per-actor resources: one CPU, and the cluster's GPUs shared out (at most one each)."""
    gpus = float(cluster.get("GPU", 0) or 0)
    return {"num_cpus": 1, "num_gpus": min(1.0, gpus / n_actors) if gpus else 0}


def ray_engine(model_path, batches, workers=None, address=None):
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:
        raise Vol3dError("the ray engine needs Ray: pip install 'vol3d-gui[ray]'") from exc
    from vol3d_gui.ml.bundle import bundle_paths

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home
    started = not ray.is_initialized()
    if started:
        ray.init(**ray_init_args(workers, address))
    try:
        cluster = ray.cluster_resources()
        cpus = max(1, int(cluster.get("CPU", 1)))
        # one CPU per actor: actors beyond the cluster's CPUs would never start, and the
        # batches the pool gave them would wait for ever
        n = min(workers or cpus, cpus)
        keras_path, card_path = bundle_paths(model_path)
        files = ray.put((keras_path.read_bytes(), card_path.read_bytes()))
        scorer = ray.remote(**actor_resources(cluster, n))(_Scorer)
        actors = [scorer.remote(None, 1, files) for _ in range(n)]
        pool = ActorPool(actors)
        try:
            yield from pool.map_unordered(lambda actor, batch: actor.score.remote(batch), batches)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            raise Vol3dError(str(cause) if isinstance(cause, Vol3dError) else f"ray: {exc}") from exc
        except ray.exceptions.RayError as exc:  # an actor or node lost
            raise Vol3dError(f"ray: {type(exc).__name__}: {exc}; the rows written so far are kept: "
                             "run the same command again to go on") from exc
        finally:
            for actor in actors:
                ray.kill(actor)
    finally:
        if started:
            ray.shutdown()


ENGINES = {"local": local_engine, "ray": ray_engine}
