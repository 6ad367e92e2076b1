"""`isol8rt bench`: the performance benchmark (cold and warm runs, modes, a concurrency sweep, variants and
docker baselines), with a table, targets, JSON results, an SVG chart and regression comparison.

The harness lives in ``bench/harness`` of a source checkout, next to the ``isol8rt`` package; the wheel
does not ship it, so there this command says so in one line. See docs/performance.md.
"""

from __future__ import annotations

import sys
from pathlib import Path
from . import SUMMARIES

_CHECKOUT = Path(__file__).resolve().parents[2]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help=SUMMARIES["bench"],
        description="Benchmark isol8rt on this machine: cold and warm runs with their phases, sequential, "
        "staggered and burst modes, a concurrency sweep, variants (network, server, session, output and file "
        "sizes), docker exec / docker run baselines and the command line's own wall time (isol8rt run cold and through a "
        "local engine, docker run --rm). Prints a table with PASS/FAIL targets.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="a smaller run (under 2 minutes): python/bash/node warm, python for the rest")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--svg", metavar="PATH", help="write the chart (phases and latency CDF) as SVG")
    parser.add_argument("--compare", metavar="OLD.json", help="flag regressions against an earlier --json result "
                        "(p50 worse by >20%% and >0.5 ms; throughput lower by >20%%)")
    parser.add_argument("--from-json", metavar="PATH", help="measure nothing: report (and chart, compare) a saved "
                        "result")
    parser.add_argument("--only", metavar="SECTIONS", help="comma-separated sections to run (default: all): "
                        "warm,modes,sweep,session,network,server,tenants,fork,output,files,realistic,cold,baselines,cli")
    parser.add_argument("--skip", metavar="SECTIONS", help="comma-separated sections to leave out")
    parser.add_argument("--runtimes", metavar="LIST", help="runtimes of the warm runs (default: all five; "
                        "--quick: python,bash,node)")
    parser.add_argument("--cold-runtimes", metavar="LIST", help="runtimes of the cold runs and baselines "
                        "(default: all five; --quick: python)")
    parser.add_argument("--oci-runtimes", metavar="LIST", help="also measure the cold rows under these OCI "
                        "runtimes, interleaved with Docker's default (e.g. crun, after `isol8rt setup --oci-runtime "
                        "crun`)")
    parser.add_argument("-n", "--runs", type=int, metavar="N", help="measured runs per warm latency row")
    parser.add_argument("--warmup", type=int, metavar="N", help="warm-up runs left out of each row")
    parser.add_argument("--cold-runs", type=int, metavar="N", help="measured cold runs per runtime")
    parser.add_argument("--concurrency", metavar="LIST", help="callers of the sweep (default 1,2,4,8,16)")
    parser.add_argument("--seconds", type=float, metavar="S", help="seconds per sweep level")
    parser.add_argument("--think-ms", type=float, metavar="MS", help="think time of the staggered mode (default 20)")
    parser.add_argument("--pool-size", type=int, metavar="N", help="warm containers per runtime (default 4)")
    parser.add_argument("--preload-image", metavar="IMAGE", help="an image whose isol8rt.preload label names pandas: "
                        "the fork section adds its pandas rows (preloaded, fresh) there")
    parser.add_argument("--sizes", metavar="LIST", help="output sizes, e.g. 1KiB,64KiB,1MiB,10MiB")
    parser.add_argument("--file-sizes", metavar="LIST", help="file sizes in and out, e.g. 1KiB,1MiB,10MiB")
    parser.add_argument("--data-image", metavar="IMAGE", help="the image of the realistic section's Python workloads "
                        "(default: the data preset's, built by `isol8rt build --preset data`)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails or a regression is "
                        "flagged")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(handler=_handle)


def _harness():
    """The ``bench.harness.main`` module of this source checkout, or None outside one."""
    if not (_CHECKOUT / "bench" / "harness" / "main.py").is_file():
        return None
    if str(_CHECKOUT) not in sys.path:
        sys.path.insert(0, str(_CHECKOUT))
    from bench.harness import main

    return main


def _handle(args) -> int:
    harness = _harness()
    if harness is None:
        print("isol8rt: bench needs a source checkout of isol8rt (its bench/ directory, which the wheel does not "
              "ship): run it from a clone, e.g. `pip install -e .` then `isol8rt bench`", file=sys.stderr)
        return 2
    return harness.main(args)
