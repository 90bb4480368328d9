"""Decode a series' frames into one RAS+ Volume, checking every file before decoding any.

Frames are ordered by their position along the slice normal (not by file name or
InstanceNumber), the slice step comes from those positions (SliceThickness is often wrong
or means something else), rescale slope/intercept apply per frame, and DICOM's LPS becomes
RAS+. Missing slices inside a stack become filler slices that are named in
meta["filler_slices"] (so a viewer never opens on one) with a notice in meta["notices"].
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from nibabel.orientations import io_orientation

from vol3d_gui.core.cooperate import checkpoint
from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.readers.budget import check_nbytes
from vol3d_gui.core.readers.dicom.decode import decode_into
from vol3d_gui.core.readers.dicom.frames import Frame, SeriesInfo, slice_thickness
from vol3d_gui.core.readers.nifti import reorient_to_ras
from vol3d_gui.core.volume import Volume

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# Relative spacing deviation tolerated before slices count as unevenly spaced.
_SPACING_TOL = 0.05


def _pixel_format(path, ds) -> tuple[np.dtype, int]:
    """The stored sample type and bytes of one frame, from the header, or refuse."""
    try:
        bits = int(ds.BitsAllocated)
        signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError) as exc:
        raise VolumeReadError(path, "the pixel description (BitsAllocated, Rows, Columns) is missing") from exc
    if samples != 1:
        raise VolumeReadError(path, f"a colour image ({samples} samples per pixel) is not a greyscale volume")
    if bits not in (8, 16, 32):
        raise VolumeReadError(path, f"{bits} bits allocated per pixel is not supported")
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}")
    return dtype, rows * cols * dtype.itemsize


def _place(info: SeriesInfo, folder: Path):
    """Frames deduplicated and sorted along the normal, each with its slot index; the step."""
    f0 = info.frames[0]
    normal = f0.normal
    placed = sorted(((float(np.dot(normal, f.ipp)), f) for f in info.frames), key=lambda t: t[0])
    dedup = [placed[0]]
    for p in placed[1:]:
        if abs(p[0] - dedup[-1][0]) >= 1e-4:
            dedup.append(p)
    warnings = []
    if len(dedup) < len(placed):
        warnings.append(f"{len(placed) - len(dedup)} duplicate slice position(s) ignored")
    pos = np.array([p[0] for p in dedup])
    if len(dedup) == 1:
        return [f for _, f in dedup], np.array([0]), slice_thickness(info.header), warnings, pos
    gaps = np.diff(pos)
    step = float(np.median(gaps))
    ratios = gaps / step
    slots = np.rint(ratios).astype(int)
    if np.any(slots < 1) or np.any(np.abs(ratios - slots) > _SPACING_TOL):
        raise VolumeReadError(
            folder, f"uneven slice spacing (gaps from {gaps.min():.3g} to {gaps.max():.3g} mm): "
                    "cannot build a regular volume")
    index = np.concatenate([[0], np.cumsum(slots)])
    return [f for _, f in dedup], index, step, warnings, pos


def _window_presets(ds) -> list[tuple[str, float, float]]:
    """The file's own windows as (name, center, width): Window Center/Width, or the enhanced
    FrameVOILUTSequence."""
    source = ds
    if "WindowCenter" not in ds:
        for seq in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            groups = ds.get(seq)
            if groups and "FrameVOILUTSequence" in groups[0]:
                source = groups[0].FrameVOILUTSequence[0]
                break

    def as_list(v):
        if v is None:
            return []
        return list(v) if hasattr(v, "__len__") and not isinstance(v, (str, bytes)) else [v]

    centers = as_list(source.get("WindowCenter"))
    widths = as_list(source.get("WindowWidth"))
    names = as_list(source.get("WindowCenterWidthExplanation"))
    out = []
    for i, (c, w) in enumerate(zip(centers, widths)):
        with contextlib.suppress(TypeError, ValueError):
            c, w = float(c), float(w)
            if np.isfinite(c) and np.isfinite(w) and w > 0:
                name = str(names[i]).strip() if i < len(names) and str(names[i]).strip() else f"file {i + 1}"
                out.append((name, c, w))
    return out


def acquisition_orientation(normal_lps: np.ndarray) -> str:
    """'axial', 'coronal' or 'sagittal' by the slice normal's main direction; else 'oblique'."""
    a = np.abs(np.asarray(normal_lps, dtype=np.float64))
    names = ("sagittal", "coronal", "axial")  # normal along L-R, P-A, I-S
    return names[int(np.argmax(a))] if a.max() >= 0.8 else "oblique"


def _prevalidate(info: SeriesInfo, frames: list[Frame]) -> tuple[np.dtype, int]:
    """Every file's pixel description against the first, before anything is decoded."""
    first_path = frames[0].path
    dtype, frame_bytes = _pixel_format(first_path, info.headers[first_path])
    rows, cols = frames[0].rows, frames[0].cols
    for path in dict.fromkeys(f.path for f in frames):
        checkpoint()
        ds = info.headers[path]
        d, b = _pixel_format(path, ds)
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols) or d != dtype:
            raise VolumeReadError(path, f"slice is {ds.Rows}x{ds.Columns} {d}, the first is "
                                        f"{rows}x{cols} {dtype}: refused before decoding")
    return dtype, frame_bytes


def load_series(info: SeriesInfo, folder: Path) -> Volume:
    """The Volume of one series found by the folder scan (its headers are not read again)."""
    frames, index, step, warnings, pos = _place(info, folder)
    raw_dtype, frame_bytes = _prevalidate(info, frames)
    rows, cols = frames[0].rows, frames[0].cols
    n_total = int(index[-1]) + 1
    slopes = np.array([f.slope for f in frames])
    inters = np.array([f.intercept for f in frames])
    integral = bool(np.all(slopes == 1) and np.all(inters == np.round(inters)))
    # the raw stack and the rescaled output (at most 4 bytes a voxel) exist at once
    check_nbytes(folder, rows * cols * n_total * (raw_dtype.itemsize + 4),
                 f"a {cols}x{rows}x{n_total} series")
    # slice-major: each slice is one contiguous block while it is written and rescaled (a
    # (cols, rows, n) buffer would stride through the whole stack for every slice); the
    # transposed view at the end has the column axis fastest, the layout of a NIfTI read
    raw = np.zeros((n_total, rows, cols), dtype=raw_dtype)
    decode_into(raw, frames, index, info.headers, frame_bytes)

    real = np.zeros(n_total, bool)
    real[index] = True
    if integral:
        lo = int(min(raw[k].min() + inters[n] for n, k in enumerate(index)))
        hi = int(max(raw[k].max() + inters[n] for n, k in enumerate(index)))
        if lo >= -32768 and hi <= 32767:
            out_dtype = np.int16
        elif lo >= -(2**31) and hi < 2**31:
            out_dtype = np.int32
        else:  # an integral intercept beyond int32: float32, checked for overflow below
            integral, out_dtype = False, np.float32
    else:
        out_dtype = np.float32
    data = np.empty(raw.shape, dtype=out_dtype)
    for n, k in enumerate(index):
        if integral:
            # wrapping integer arithmetic: the sum is exact because it fits out_dtype (lo/hi)
            np.add(raw[k], out_dtype(inters[n]), out=data[k], dtype=out_dtype, casting="unsafe")
        else:
            # a slope or intercept beyond float32 (1e308 in a hostile header) would give Inf voxels
            with np.errstate(over="raise", invalid="raise"):
                try:
                    data[k] = (raw[k].astype(np.float32) * np.float32(slopes[n])
                               + np.float32(inters[n]))
                except FloatingPointError as exc:
                    raise VolumeReadError(frames[n].path, f"RescaleSlope {slopes[n]:g} / RescaleIntercept "
                                                          f"{inters[n]:g} give values beyond float32") from exc
    del raw
    notices = []
    if n_total > len(frames):
        fill = min(data[k].min() for k in index)  # data[index] would copy the volume
        data[~real] = fill
        where = ", ".join(f"{pos[i]:.1f}" for i in np.nonzero(np.diff(index) > 1)[0])
        notices.append(f"{n_total - len(frames)} missing slice(s) after position(s) {where} mm "
                       "along the normal: shown as a gap filled with the series minimum")

    data = data.transpose(2, 1, 0)  # voxel (i=column, j=row, k=slice)

    f0 = frames[0]
    row_dir, col_dir = f0.iop[:3], f0.iop[3:]
    normal = f0.normal
    slice_vec = normal * step
    if n_total > 1:
        # follow the real positions (gantry tilt shears the stack), one step per slot
        slice_vec = (frames[-1].ipp - f0.ipp) / (n_total - 1)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * f0.spacing[1]
    lps[:3, 1] = col_dir * f0.spacing[0]
    lps[:3, 2] = slice_vec
    lps[:3, 3] = f0.ipp
    affine = _LPS_TO_RAS @ lps
    ornt = io_orientation(affine)
    data, affine, orig = reorient_to_ras(data, affine)
    # where the slice axis went, so that filler slices are named in the final array's indices
    slice_axis, flip = int(ornt[2, 0]), ornt[2, 1] < 0
    filler = [int(n_total - 1 - k if flip else k) for k in np.nonzero(~real)[0]]

    header = info.header
    presets = _window_presets(header)
    meta = {
        "format": "DICOM",
        "modality": info.modality,
        "series_description": info.description,
        "series_uid": info.uid,
        "series_key": info.key,
        "n_files": len(dict.fromkeys(f.path for f in frames)),
        "n_frames": len(frames),
        "original_orientation": orig,
        "acquisition_orientation": acquisition_orientation(normal),
        "warnings": warnings + notices,
        "notices": notices,
        "filler_slices": sorted(filler),
        "slice_axis": slice_axis,
        # (center, width) pairs, first the one to open with; their names beside them
        "window_presets": [(c, w) for _, c, w in presets],
        "window_preset_names": [name for name, _, _ in presets],
        "transfer_syntax": str(getattr(header.file_meta.get("TransferSyntaxUID"), "name", "")),
    }
    if info.note:
        meta["series_note"] = info.note
    if len(frames) == 1:
        meta["single_slice"] = True
        meta["warnings"].append("a single slice: shown as a one-slice volume")
    if f0.index is not None:
        meta["enhanced"] = True
    if presets:  # the keys the window used before default_window existed
        meta["WindowCenter"], meta["WindowWidth"] = presets[0][1], presets[0][2]
    name = info.description or folder.name
    if info.note:
        name = f"{name} ({info.note})"
    return Volume(data, affine, name=name, source=str(folder), meta=meta)
