"""Run a reader in a child process under an address-space limit (RLIMIT_AS).

A regression that decodes more than the header declares then fails with MemoryError in the
child instead of swapping the machine, and a reader stuck on a FIFO hits the timeout.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# an interpreter with numpy, nibabel and pynrrd imported takes ~180 MiB of address space
ADDRESS_SPACE = 768 << 20
BUDGET = 64 << 20

_CHILD = """
import json, sys
from vol3d_gui.core.errors import VolumeReadError
call = {call}
try:
    out = call(*json.loads(sys.argv[1]))
    print(json.dumps({{"ok": repr(out)}}))
except VolumeReadError as exc:
    print(json.dumps({{"error": exc.reason}}))
"""


def run_limited(call: str, *args, timeout: float = 120.0) -> dict:
    """``call``: an expression giving a function (e.g. a lambda importing a reader), called
    with ``args`` in the child. Returns {"ok": repr(result)} or {"error": VolumeReadError reason};
    anything else (MemoryError, a traceback) fails the calling test with the child's stderr."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    env = dict(os.environ, VOL3D_MEMORY_BUDGET=str(BUDGET), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", _CHILD.format(call=call), json.dumps([str(a) for a in args])],
                          preexec_fn=limit, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


LOAD_VOLUME = "lambda p: __import__('vol3d_gui.core.io', fromlist=['x']).load_volume(p).data.shape"
OPEN_STUDY = "lambda p: len(__import__('vol3d_gui.core.study', fromlist=['x']).open_study(p))"
