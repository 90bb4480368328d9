"""Grab the README's screenshot: the demo study, its second case (a liver lesion), the bundled
model's prediction and Grad-CAM over the slices, as a user sees it after `make run`.

    xvfb-run -a -s "-screen 0 1600x1000x24 +extension GLX +render" \
        .venv/bin/python scripts/demo_screenshot.py docs/screenshots/demo_window.png
"""

import sys


def main(out: str, wait_ms: int = 40000) -> int:
    from PySide6 import QtCore

    from vol3d_gui.ui.app import make_app, start_gui

    app = make_app()
    window = start_gui(demo=True)
    errors = []
    window.show_error = lambda title, exc: errors.append(f"{title}: {exc}")

    def shoot():
        window.grab().save(out)
        app.quit()

    QtCore.QTimer.singleShot(wait_ms // 2, lambda: window.review_controller.step(1))
    QtCore.QTimer.singleShot(wait_ms, shoot)
    app.exec()
    window.close()
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":  # the ML service is spawned: it re-imports this module
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "demo_window.png"))
