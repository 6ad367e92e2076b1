"""Which image a sandbox runs: the thin runtime image, or the custom image with its packages baked in.

The engine asks here before it starts containers, so that a missing or outdated image is reported as
what to run (``isol8rt setup ...``), not as a Docker error or an agent that speaks another protocol.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..agent.protocol import PROTOCOL_VERSION
from ..docker import DockerClient, NotFound
from ..errors import ImageNotFound
from ..runtimes import LABEL_PROTOCOL, runtime_info
from .bake import find_baked_image
from .packages import normalize_packages, packages_label


async def sandbox_image(client: DockerClient, runtime: str, packages: str | Iterable[str] = ()) -> str:
    """The image to run ``runtime`` with ``packages`` baked in (none: the thin image). Raises
    :class:`~isol8rt.errors.ImageNotFound` saying which ``isol8rt setup`` command makes it."""
    image = runtime_info(runtime).image
    try:
        inspect = await client.inspect_image(image)
    except NotFound:
        raise ImageNotFound(f"the {image} image is missing: run `isol8rt setup`") from None
    protocol = ((inspect.config.labels if inspect.config else None) or {}).get(LABEL_PROTOCOL)
    if protocol != str(PROTOCOL_VERSION):
        raise ImageNotFound(
            f"the {image} image has agent protocol {protocol}, this isol8rt speaks {PROTOCOL_VERSION}: "
            "run `isol8rt setup`"
        )
    wanted = normalize_packages(runtime, packages) if packages else ()
    if not wanted:
        return image
    baked = await find_baked_image(client, runtime, wanted)
    if baked is None:
        raise ImageNotFound(
            f"no {runtime} image has {packages_label(wanted)} baked in: "
            f"run `isol8rt setup --{runtime} {packages_label(wanted)}`"
        )
    return baked
