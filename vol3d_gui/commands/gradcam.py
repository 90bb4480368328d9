"""vol3d gradcam: write a Grad-CAM saliency map as NIfTI in the source volume's world space."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a bundle (.keras with its .json card)")
    p.add_argument("path", help="a NIfTI/NRRD file or a DICOM folder")
    p.add_argument("-o", "--out", required=True, help="output .nii.gz (opens as an overlay elsewhere)")
    p.add_argument("--class", dest="class_name", default=None,
                   help="class to explain (name or index; default: the predicted class)")
    p.add_argument("--plus", action="store_true", help="Grad-CAM++ instead of Grad-CAM")
    p.add_argument("--series", default=None, help="DICOM series UID or description")
    p.add_argument("--body", action="store_true",
                   help="mask the map to the body (foreground) and explain the displayed class "
                        "(the card's operating point); written on the mask's grid")


def run(args) -> int:
    from vol3d_gui.core.errors import Vol3dError
    from vol3d_gui.core.io import load_volume, save_nifti
    from vol3d_gui.ml.bundle import load_bundle
    from vol3d_gui.ml.gradcam import gradcam, gradcam_in_body

    bundle = load_bundle(args.model)
    volume = load_volume(args.path, series=args.series)
    class_index = None
    if args.class_name is not None:
        names = bundle.class_names
        if args.class_name in names:
            class_index = names.index(args.class_name)
        elif args.class_name.isdigit() and int(args.class_name) < len(names):
            class_index = int(args.class_name)
        else:
            raise Vol3dError(f"unknown class {args.class_name!r}; the model has {', '.join(names)}")
    if args.body:
        sal, _ = gradcam_in_body(bundle, volume, class_index, plus=args.plus)
    else:
        sal = gradcam(bundle, volume, class_index, plus=args.plus)
    out = save_nifti(sal, args.out)
    print(json.dumps({"path": args.path, "out": str(out), "model": bundle.label,
                      "class": sal.meta["class_name"], "method": sal.meta["method"],
                      "probabilities": dict(zip(bundle.class_names, sal.meta["probabilities"])),
                      "grid": list(sal.shape)}))
    return 0
