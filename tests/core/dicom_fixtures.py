"""DICOM test objects built with real encoders: compressed copies of a series, an enhanced
multi-frame object assembled from classic slices, a deflated file streamed through zlib."""

from __future__ import annotations

import copy
import zlib
from pathlib import Path

import numpy as np


def compress_series(paths: list[Path], transfer_syntax, **kw) -> list[Path]:
    """Re-encode each file in place with pydicom's encoders (pylibjpeg-openjpeg, pyjpegls,
    pylibjpeg-rle): the pixel data becomes a real compressed codestream."""
    import pydicom

    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(transfer_syntax, generate_instance_uid=False, **kw)
        ds.save_as(p, enforce_file_format=True)
    return paths


def save_deflated(paths: list[Path]) -> list[Path]:
    """Re-write each file with the Deflated Explicit VR Little Endian transfer syntax."""
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    for p in paths:
        ds = pydicom.dcmread(p)
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds.save_as(p, enforce_file_format=True)
    return paths


def enhanced_from_classic(paths: list[Path], out: Path, *, echoes: int = 1, seed: int = 0,
                          per_frame_intercepts=None) -> Path:
    """One enhanced MR object holding the classic slices' frames (each repeated per echo,
    echo e's pixels + 100*e), in shuffled frame order, with geometry only in functional groups.

    per_frame_intercepts: optional {slice index: intercept} that changes that frame's
    RescaleIntercept and shifts its stored values so that the rescaled values stay the same.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    slices = [pydicom.dcmread(p) for p in paths]
    first = slices[0]
    frames = []  # (echo, slice index, ds)
    for e in range(echoes):
        for k, ds in enumerate(slices):
            frames.append((e, k, ds))
    order = np.random.default_rng(seed).permutation(len(frames))
    frames = [frames[i] for i in order]

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesDescription", "Rows",
                "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
                "BitsStored", "HighBit", "PixelRepresentation"):
        setattr(ds, key, copy.deepcopy(getattr(first, key)))
    ds.Modality = "MR"
    ds.NumberOfFrames = len(frames)

    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = first.PixelSpacing
    measures.SliceThickness = 99.0
    shared.PixelMeasuresSequence = Sequence([measures])
    orient = Dataset()
    orient.ImageOrientationPatient = first.ImageOrientationPatient
    shared.PlaneOrientationSequence = Sequence([orient])
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = 300.0, 900.0
    shared.FrameVOILUTSequence = Sequence([voi])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])

    dim_in_stack, dim_echo = Dataset(), Dataset()
    dim_in_stack.DimensionIndexPointer = 0x00209057  # InStackPositionNumber
    dim_echo.DimensionIndexPointer = 0x00189082  # EffectiveEchoTime
    ds.DimensionIndexSequence = Sequence([dim_in_stack, dim_echo])

    per_frame, pixels = [], []
    intercepts = per_frame_intercepts or {}
    for e, k, s in frames:
        g = Dataset()
        pos = Dataset()
        pos.ImagePositionPatient = s.ImagePositionPatient
        g.PlanePositionSequence = Sequence([pos])
        content = Dataset()
        content.DimensionIndexValues = [k + 1, e + 1]
        g.FrameContentSequence = Sequence([content])
        pvt = Dataset()
        inter = float(intercepts.get(k, s.RescaleIntercept))
        pvt.RescaleSlope, pvt.RescaleIntercept = float(s.RescaleSlope), inter
        g.PixelValueTransformationSequence = Sequence([pvt])
        per_frame.append(g)
        px = s.pixel_array.astype(np.int64) + 100 * e + int(round(float(s.RescaleIntercept) - inter))
        pixels.append(px.astype(np.uint16))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = np.stack(pixels).tobytes()
    ds.save_as(out, enforce_file_format=True)
    return out


def deflate_bomb(path: Path, *, rows: int = 16, cols: int = 16, pixel_bytes: int = 1 << 30) -> Path:
    """A deflated DICOM whose header says rows x cols but whose pixel data element inflates to
    ``pixel_bytes`` of zeros: streamed through zlib, so neither side holds it in memory."""
    import io
    import struct

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.StudyInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "CT"
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    body = io.BytesIO()
    from pydicom.filebase import DicomFileLike

    fl = DicomFileLike(body)
    fl.is_little_endian, fl.is_implicit_VR = True, False
    write_dataset(fl, ds)
    body.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixel_bytes))
    with open(path, "wb") as fh:
        fh.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(DicomFileLike(fh), meta, enforce_standard=True)
        z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        fh.write(z.compress(body.getvalue()))
        zeros = bytes(1 << 20)
        for _ in range(pixel_bytes >> 20):
            fh.write(z.compress(zeros))
        fh.write(z.flush())
    return path
