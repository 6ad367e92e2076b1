"""`isol8rt cleanup` (placeholder until implemented)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("cleanup", help="(not implemented yet)")
    parser.set_defaults(handler=lambda args: 2)
