"""`vol3d` opens the viewer; `vol3d train|evaluate|compare|predict|gradcam|finetune|calibrate|score` run headless.

Each subcommand lives in its own module under vol3d_gui.commands with ``add_arguments(parser)``
and ``run(args) -> int``. Heavy imports (TensorFlow, Qt) happen inside ``run`` so that
``vol3d --help`` and the GUI's first paint stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from vol3d_gui import __version__

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("vol3d_gui.commands.train", "train a Conv3D classifier bundle on a dataset"),
    "evaluate": ("vol3d_gui.commands.evaluate", "measure a bundle on a labelled dataset split"),
    "compare": ("vol3d_gui.commands.compare", "compare two bundles on the same labelled split, paired"),
    "predict": ("vol3d_gui.commands.predict", "classify volumes, one JSON line each"),
    "gradcam": ("vol3d_gui.commands.gradcam", "write a Grad-CAM saliency map as NIfTI"),
    "finetune": ("vol3d_gui.commands.finetune", "fine-tune a bundle on reviewed labels"),
    "calibrate": ("vol3d_gui.commands.calibrate", "Platt-scale a two-class bundle on a validation split"),
    "score": ("vol3d_gui.commands.score", "score a folder or manifest of volumes into a results table"),
    "card-domain": ("vol3d_gui.commands.card_domain",
                    "record a bundle's training domain, reliability and operating point in its card"),
}


def _gui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vol3d",
        description="Review 3-D medical volumes with a deep-learning classifier beside you.",
        epilog="headless subcommands: " + ", ".join(COMMANDS) + " (vol3d SUBCOMMAND --help)",
    )
    p.add_argument("path", nargs="?", help="a NIfTI/NRRD file, a DICOM folder or a study")
    p.add_argument("--demo", action="store_true", help="open the built-in phantom study")
    p.add_argument("--model", help="a model bundle (.keras with its .json card) to load")
    p.add_argument("--version", action="version", version=f"vol3d {__version__}")
    return p


def _command_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    p = argparse.ArgumentParser(prog=f"vol3d {name}", description=help_text)
    module.add_arguments(p)
    return p, module


def _one_line(exc: BaseException) -> str:
    """An error as one line: a reason quoting a file's bad content may hold newlines."""
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        parser, module = _command_parser(argv[0])
        args = parser.parse_args(argv[1:])
        from vol3d_gui.core.errors import Vol3dError
        from vol3d_gui.store.labels import LabelStoreError

        try:
            return int(module.run(args) or 0)
        except (Vol3dError, LabelStoreError) as exc:
            print(f"vol3d {argv[0]}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except OSError as exc:  # a full disk, a missing or unreadable path: no traceback for those
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            print(f"vol3d {argv[0]}: error: {where}{exc.strerror or _one_line(exc)}", file=sys.stderr)
            return 2
        except MemoryError:
            print(f"vol3d {argv[0]}: error: not enough memory", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"vol3d {argv[0]}: interrupted", file=sys.stderr)
            return 130
    args = _gui_parser().parse_args(argv)
    from vol3d_gui.ui.app import run_gui

    return run_gui(path=args.path, demo=args.demo, model=args.model)


if __name__ == "__main__":
    raise SystemExit(main())
