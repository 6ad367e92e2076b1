"""`isol8rt list-custom`: the custom images `isol8rt build` made."""

from __future__ import annotations

import datetime

import trio
from . import SUMMARIES


def register(subparsers) -> None:
    parser = subparsers.add_parser("list-custom", help=SUMMARIES["list-custom"],
                                   description="List the custom images built with `isol8rt build`.")
    parser.set_defaults(handler=_handle)


def _handle(args) -> int:
    return trio.run(_list)


async def _list() -> int:
    from ..docker import DockerClient
    from ..images.custom import list_custom

    async with DockerClient() as client:
        images = await list_custom(client)
    if not images:
        print("no custom images (make one with `isol8rt build --base RUNTIME --tag NAME ...`)")
        return 0
    print(f"{'IMAGE':40} {'RUNTIME':8} {'SIZE':>9}  {'CREATED':16}  PACKAGES")
    for image in images:
        created = datetime.datetime.fromtimestamp(image.created).strftime("%Y-%m-%d %H:%M")
        print(f"{image.image:40} {image.runtime:8} {image.size / 1e6:7.1f}MB  {created:16}  {image.packages or '-'}")
    return 0
