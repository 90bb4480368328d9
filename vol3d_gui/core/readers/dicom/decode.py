"""A series' pixel data into its slots: native pixels read in place, compressed frames decoded
by worker processes.

The JPEG, JPEG-LS and JPEG 2000 decoders (the pylibjpeg plugins) hold the interpreter lock for
a whole frame: 80-90 ms a 512x512 JPEG 2000 frame on this machine, each one a stall of the
window while a series opens in a reader thread. A series with more than a few compressed
frames is therefore decoded in worker processes (spawned, never forked: the GUI process has Qt
and other threads), one file per task, which also spreads the decoding over the cores. The
pool is started on first use and kept for the session. Each task runs the same checks as a
decode in this process (inflate limit, codestream size against Rows/Columns); VolumeReadError
comes back as itself. VOL3D_DECODE_WORKERS=0 keeps every decode in the calling thread.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from vol3d_gui.core.cooperate import checkpoint
from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.readers.dicom.files import read_dicom
from vol3d_gui.core.readers.dicom.frames import Frame, number_of_frames
from vol3d_gui.core.readers.dicom.native import read_native_frames

_HEADER_SLACK = 1 << 20  # what a deflated file may inflate to beyond its pixel data
# Below this many compressed frames the pool's start (about a second, once) is not worth it.
MIN_FRAMES_FOR_WORKERS = 8

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _workers() -> int:
    try:
        wanted = int(os.environ.get("VOL3D_DECODE_WORKERS", "-1"))
    except ValueError:
        wanted = -1
    return min(os.cpu_count() or 1, 4) if wanted < 0 else wanted


def _get_pool() -> ProcessPoolExecutor | None:
    global _pool
    n = _workers()
    if n < 1:
        return None
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_worker_start)
            atexit.register(shutdown_workers)
        return _pool


def _worker_start() -> None:
    """In each worker: yield the cores to the app, and leave when the app does.

    Decoding is background work: at a lower priority the window's thread is scheduled first
    even while every core decodes. A worker holds both ends of the task queue's pipe, so it
    never sees the queue close; a GUI killed or left by os._exit would otherwise leave its
    workers waiting forever."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), os._exit(0)), daemon=True).start()


def shutdown_workers(wait: bool = False) -> None:
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)


def _check_stream(path, ds, frame_index: int, rows: int, cols: int) -> None:
    """A compressed frame whose own header claims another size is refused before decoding
    (the JPEG and JPEG 2000 decoders allocate what the codestream says, not what DICOM says)."""
    ts = ds.file_meta.get("TransferSyntaxUID")
    if ts is None or not ts.is_compressed or ts.keyword == "RLELossless":
        return  # RLE output is sized by Rows/Columns, which were checked
    from pydicom.encaps import get_frame

    try:
        stream = get_frame(ds.PixelData, frame_index, number_of_frames=number_of_frames(ds))
    except Exception as exc:
        raise VolumeReadError(path, f"the compressed pixel data is malformed ({exc})") from exc
    params = None
    with contextlib.suppress(Exception):
        if ts.keyword.startswith("JPEG2000") or ts.keyword.startswith("HTJ2K"):
            import openjpeg

            params = openjpeg.get_parameters(stream)
        else:
            import libjpeg

            params = libjpeg.get_parameters(stream)
    if params and (int(params["rows"]), int(params["columns"])) != (rows, cols):
        raise VolumeReadError(path, f"the compressed frame is {params['rows']}x{params['columns']}, "
                                    f"the header says {rows}x{cols}: refused before decoding")


def decode_file(path: Path, indices: list[int], rows: int, cols: int, limit: int) -> list[np.ndarray]:
    """The frames ``indices`` of one file, decoded (stored values, the header's dtype).
    Runs in a worker process or in the calling thread."""
    from pydicom.pixels import iter_pixels

    try:
        ds = read_dicom(path, header_only=False, inflate_limit=limit)
    except VolumeReadError:
        raise
    except Exception as exc:
        raise VolumeReadError(path, f"cannot read the file ({type(exc).__name__}: {exc})") from exc
    if "PixelData" not in ds:
        raise VolumeReadError(path, "the DICOM file has no pixel data")
    for i in indices:
        _check_stream(path, ds, i, rows, cols)
    out = []
    try:
        for arr in iter_pixels(ds, indices=indices, raw=True):
            if arr.shape != (rows, cols):
                raise VolumeReadError(path, f"frame is {arr.shape}, expected {(rows, cols)}")
            out.append(arr)
    except (VolumeReadError, MemoryError):
        raise
    except Exception as exc:
        raise VolumeReadError(path, f"cannot decode pixel data ({type(exc).__name__}: {exc})") from exc
    return out


def _in_workers(pool, jobs, raw) -> bool:
    """Decode ``jobs`` [(path, wanted, args)] in the pool; False when the pool broke (a worker
    killed, say), and the caller decodes here instead."""
    pending = {pool.submit(decode_file, *args): (path, wanted) for path, wanted, args in jobs}
    try:
        while pending:
            done, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            checkpoint()  # Cancel: the frames not started are dropped below
            for fut in done:
                _path, wanted = pending.pop(fut)
                for (_, slot), arr in zip(wanted, fut.result()):
                    raw[slot] = arr
    except BrokenProcessPool:
        shutdown_workers()
        return False
    finally:
        for fut in pending:
            fut.cancel()
    return True


def decode_into(raw: np.ndarray, frames: list[Frame], slots: np.ndarray, headers: dict,
                per_frame_bytes: int) -> None:
    """Every file's frames, each file read once, straight into the slice slots of ``raw``."""
    by_file: dict[Path, list[tuple[int | None, int]]] = {}
    for f, slot in zip(frames, slots):
        by_file.setdefault(f.path, []).append((f.index, int(slot)))
    rows, cols = frames[0].rows, frames[0].cols
    jobs = []
    for path, wanted in by_file.items():
        checkpoint()
        if read_native_frames(path, headers[path], wanted, raw):
            continue
        # a deflated file may inflate to its declared frames and a header, no more
        limit = per_frame_bytes * number_of_frames(headers[path]) + _HEADER_SLACK
        indices = [0 if i is None else i for i, _ in wanted]
        jobs.append((path, wanted, (path, indices, rows, cols, limit)))
    n_frames = sum(len(w) for _, w, _ in jobs)
    pool = _get_pool() if n_frames >= MIN_FRAMES_FOR_WORKERS else None
    if pool is not None and _in_workers(pool, jobs, raw):
        return
    for _path, wanted, args in jobs:
        checkpoint()
        for (_, slot), arr in zip(wanted, decode_file(*args)):
            raw[slot] = arr
