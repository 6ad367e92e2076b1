"""`isol8rt profile show NAME|PATH`: validate a seccomp profile and print its rules as a host applies them."""

from __future__ import annotations

import argparse

from ..security import seccomp
from . import SUMMARIES


def register(subparsers) -> None:
    parser = subparsers.add_parser("profile", help=SUMMARIES["profile"])
    actions = parser.add_subparsers(dest="profile_command", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="validate a profile and print its rules",
        description=(
            "Validate a seccomp profile (compiling it with libseccomp) and print the rules that apply on a "
            f"host of the given architecture. PROFILE is a builtin ({', '.join(seccomp.BUILTIN_PROFILES)}) "
            "or the path of a profile in Docker's JSON format."
        ),
    )
    show.add_argument("profile", metavar="PROFILE", help="a builtin profile's name, or a JSON file's path")
    show.add_argument("--arch", choices=("x86_64", "aarch64"), help="the host architecture (default: this one)")
    show.add_argument("--json", action="store_true", help="print the compact JSON Docker is given instead")
    show.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    profile = seccomp.load_profile(args.profile)
    arch = args.arch or seccomp.host_arch()
    bpf = seccomp.compile_profile(profile, arch)
    if args.json:
        print(seccomp.docker_json(profile))
        return 0
    print(f"profile {args.profile}: {len(bpf) // 8} BPF instructions on {arch}")
    print(seccomp.describe(profile, arch))
    return 0
