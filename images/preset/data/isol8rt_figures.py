"""isol8rt's matplotlib backend: figures come back to the caller as PNG artifacts.

Agg draws; ``plt.show()`` and the end of the program (or of a session's cell: the session driver calls
``flush``) save every open figure as a PNG record in ``/sandbox/.isol8rt/outputs.jsonl``, which the engine
collects like an output file and returns as the result's ``images`` (isol8rt/engine/rich.py). Shown
figures are closed, as a notebook's inline backend does, so none is returned twice.
"""

import atexit
import base64
import io
import json
import os

from matplotlib._pylab_helpers import Gcf
from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

OUTPUTS = "/sandbox/.isol8rt/outputs.jsonl"

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase


def flush():
    """Write every open figure as a PNG record, then close them all."""
    managers = Gcf.get_all_fig_managers()
    if not managers:
        return
    os.makedirs(os.path.dirname(OUTPUTS), exist_ok=True)
    with open(OUTPUTS, "a") as file:
        for manager in managers:
            png = io.BytesIO()
            manager.canvas.figure.savefig(png, format="png")
            record = {"kind": "image", "mime": "image/png", "data": base64.b64encode(png.getvalue()).decode()}
            file.write(json.dumps(record) + "\n")
    Gcf.destroy_all()


def show(*args, **kwargs):
    flush()


# Registered after Gcf's own exit hook (imported above), so it runs first: the figures still exist.
atexit.register(flush)
