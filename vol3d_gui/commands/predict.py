"""vol3d predict: classify volumes; one JSON line per volume (errors too, as JSON lines).

Each line holds the probabilities, the displayed class (the card's operating point), the
uncertainty (MC-dropout predictive entropy, bits) and the domain check: ``in_domain`` false
with its reasons when the volume is unlike the model's training data, so that a script
does not take a confident answer on a brain for a finding."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a bundle (.keras with its .json card)")
    p.add_argument("paths", nargs="+", help="NIfTI/NRRD files or DICOM folders")
    p.add_argument("--series", default=None, help="DICOM series UID or description")


def run(args) -> int:
    from vol3d_gui.core.errors import Vol3dError
    from vol3d_gui.core.io import load_volume
    from vol3d_gui.ml.bundle import load_bundle

    bundle = load_bundle(args.model)
    failures = 0
    for path in args.paths:
        try:
            vol = load_volume(path, series=args.series)
        except Vol3dError as exc:
            failures += 1
            print(json.dumps({"path": path, "error": str(exc)}), flush=True)
            continue
        prediction, check = bundle.assess(vol)
        probs = prediction.probabilities
        k = bundle.decide(probs)  # the card's operating point for two classes, else the argmax
        print(json.dumps({"path": path, "model": bundle.label, "class": bundle.class_names[k],
                          "class_index": k,
                          "probabilities": dict(zip(bundle.class_names, map(float, probs))),
                          "uncertainty": float(prediction.uncertainty),
                          "in_domain": check.in_domain,
                          "domain": check.to_dict()}), flush=True)
    if failures:
        print(f"vol3d predict: {failures} of {len(args.paths)} inputs could not be read", file=sys.stderr)
    return 1 if failures else 0
