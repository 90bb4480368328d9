"""Shared timing helpers for the benchmarks. Results are ratios against a baseline measured
in the same run, so they travel between machines better than raw seconds."""

from __future__ import annotations

import dataclasses
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"


def timeit(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> dict:
    """Run ``fn`` warmup + repeat times; return best and median seconds of the timed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"best_s": min(times), "median_s": statistics.median(times), "runs": repeat}


def interleaved(fns: dict[str, Callable[[], object]], *, repeat: int = 5, warmup: int = 1) -> dict:
    """Time several callables in alternation (A B A B ...) so drift on a shared machine hits
    all of them alike. Returns name -> {best_s, median_s}."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: {"best_s": min(v), "median_s": statistics.median(v), "runs": repeat}
            for k, v in times.items()}


def report(name: str, results: dict) -> dict:
    """Print results and write them to bench/out/NAME.json with a note of the machine."""
    results = {"benchmark": name, "machine": platform.platform(), "python": platform.python_version(),
               **results}
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(results, indent=2, default=float))
    print(json.dumps(results, indent=2, default=float))
    return results


def write_dicom_series(folder: Path, hu: np.ndarray, spacing, compress: bool = False) -> None:
    """A CT series, one file per axial slice of ``hu`` (x, y, z), into a new ``folder``;
    ``compress``: JPEG 2000 lossless (pylibjpeg-openjpeg through pydicom)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

    folder.mkdir(parents=True)
    series_uid, study_uid = generate_uid(), generate_uid()
    nx, ny, nz = hu.shape
    for k in range(nz):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.Modality, ds.SeriesDescription = "CT", "bench phantom"
        ds.ImagePositionPatient = [0.0, 0.0, float(k * spacing[2])]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing[1], spacing[0]]
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.ascontiguousarray(hu[:, :, k].T).astype("<i2").tobytes()
        if compress:
            ds.compress(JPEG2000Lossless, generate_instance_uid=False)
        ds.save_as(folder / f"{k:04d}.dcm", enforce_file_format=True)


def viewer_case():
    """The viewer benches' case: a 512x512x300 int16 CT phantom, its lesion mask and a coarse
    random saliency map over the whole volume (every pixel of every view under an overlay).

    The volume is laid out in memory as the NIfTI and DICOM readers give a scan (x fastest, as
    the files store it: an axial plane is contiguous); napari's (z, y, x) array in bench napari
    is the same bytes."""
    from vol3d_gui.core.phantom import lesion_phantom
    from vol3d_gui.core.volume import Volume

    vol, mask = lesion_phantom(0, True, shape=(512, 512, 300), spacing=(0.7, 0.7, 1.0))
    vol = dataclasses.replace(vol, data=np.asfortranarray(vol.data))
    sal = Volume(np.random.default_rng(0).random((8, 8, 6)).astype(np.float32),
                 vol.affine @ np.diag([64, 64, 50, 1.0]))
    return vol, mask, sal


def add_viewer_overlays(window, mask, sal) -> None:
    """The mask and the saliency map as the app shows them (the issue's 'with a mask and a
    saliency overlay')."""
    window.add_overlay(mask, "lesion mask", colormap="green", opacity=0.4, threshold=0.5)
    window.add_overlay(sal, "saliency", colormap="hot", opacity=0.5, threshold=0.2, vmin=0.0, vmax=1.0,
                       order=1)


def window_without_gl():
    """A MainWindow as a machine without OpenGL gets it: CPU slice views, no 3-D view."""
    import os

    from vol3d_gui.ui.main_window import MainWindow

    os.environ["VOL3D_DISABLE_GL"] = "1"
    try:
        return MainWindow()
    finally:
        del os.environ["VOL3D_DISABLE_GL"]
