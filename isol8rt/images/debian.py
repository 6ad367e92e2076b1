"""debian:bookworm-slim, the image everything is built on: found locally, pulled, or bootstrapped.

Where no registry can be reached (CI, air-gapped hosts) setup makes it itself: mmdebstrap installs a
minbase bookworm from the Debian mirror, slimmed like Docker's official -slim images, and the tarball is
imported. The recipe is images/debian/bootstrap.json. It takes about half a minute, so an image that is
present is kept until ``--force``, whoever made it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import msgspec
import trio

from ..docker import DockerClient, DockerError, NotFound
from ..errors import SetupError
from ..runtimes import LABEL_CONTENT_HASH, LABEL_MANAGED_BY, MANAGED_BY
from .catalog import DEBIAN_IMAGE, DEBIAN_REPO, DEBIAN_TAG, recipes_dir
from .host import apt_install, can_install_packages
from .recipe import content_hash, directory_files

#: A pull that gets no answer at all is given up after this long (a registry that is unreachable
#: usually fails at once).
PULL_TIMEOUT = 120.0


class BootstrapRecipe(msgspec.Struct, frozen=True, kw_only=True):
    suite: str
    variant: str
    hook_dirs: list[str]
    sources: list[str]
    dpkg_options: list[str]
    apt_options: list[str]
    customize_hooks: list[str]
    changes: list[str]
    comment: str = ""
    hook_dirs_comment: str = ""


class DebianBase(msgspec.Struct, frozen=True):
    id: str
    #: "up to date", "pulled" or "bootstrapped".
    status: str


def load_bootstrap_recipe() -> BootstrapRecipe:
    return msgspec.json.decode((recipes_dir() / "debian" / "bootstrap.json").read_bytes(), type=BootstrapRecipe)


def bootstrap_hash() -> str:
    return content_hash("", directory_files(recipes_dir() / "debian"), {}, {})


def mmdebstrap_argv(recipe: BootstrapRecipe, output: Path) -> list[str]:
    argv = ["mmdebstrap", f"--variant={recipe.variant}", "--format=tar", "--quiet"]
    argv += [f"--hook-dir={directory}" for directory in recipe.hook_dirs]
    argv += [f"--dpkgopt={option}" for option in recipe.dpkg_options]
    argv += [f"--aptopt={option}" for option in recipe.apt_options]
    argv += [f"--customize-hook={hook}" for hook in recipe.customize_hooks]
    return [*argv, recipe.suite, str(output), *recipe.sources]


async def ensure_debian_base(
    client: DockerClient, *, force: bool = False, progress: Callable[[str], None] = print
) -> DebianBase:
    """Make sure debian:bookworm-slim exists; with ``force``, get a fresh one even if it does."""
    if not force:
        try:
            return DebianBase((await client.inspect_image(DEBIAN_IMAGE)).id, "up to date")
        except NotFound:
            pass
    pull_error = await _try_pull(client, progress)
    if pull_error is None:
        return DebianBase((await client.inspect_image(DEBIAN_IMAGE)).id, "pulled")
    if not can_install_packages():
        raise SetupError(
            f"{DEBIAN_IMAGE} is missing and cannot be pulled ({pull_error}): "
            f"`docker pull {DEBIAN_IMAGE}` (or `docker load` it), or run `isol8rt setup` as root on "
            "Debian or Ubuntu to bootstrap it with mmdebstrap"
        )
    progress(f"{DEBIAN_IMAGE}: cannot pull it ({pull_error}), so it is bootstrapped")
    return DebianBase(await _bootstrap(client, progress), "bootstrapped")


async def _try_pull(client: DockerClient, progress: Callable[[str], None]) -> str | None:
    """None when the pull worked, else why it did not."""
    progress(f"{DEBIAN_IMAGE}: pulling")
    with trio.move_on_after(PULL_TIMEOUT):
        try:
            await client.pull_image(DEBIAN_REPO, DEBIAN_TAG)
        except DockerError as exc:
            return str(getattr(exc, "message", None) or exc).splitlines()[0]
        return None
    return f"no answer within {PULL_TIMEOUT:g} s"


async def _bootstrap(client: DockerClient, progress: Callable[[str], None]) -> str:
    if shutil.which("mmdebstrap") is None:
        await apt_install(["mmdebstrap"], progress=progress)
    recipe = load_bootstrap_recipe()
    started = trio.current_time()
    progress(f"{DEBIAN_IMAGE}: bootstrapping {recipe.suite} with mmdebstrap (about 30 s)")
    with tempfile.TemporaryDirectory(prefix="isol8rt-bootstrap-") as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        result = await trio.run_process(
            mmdebstrap_argv(recipe, tarball),
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        if result.returncode != 0:
            lines = result.stderr.decode(errors="replace").strip().splitlines()
            reason = lines[-1] if lines else f"exit status {result.returncode}"
            raise SetupError(
                f"mmdebstrap could not bootstrap {DEBIAN_IMAGE} ({reason}): check that "
                "http://deb.debian.org/debian is reachable and run `isol8rt setup` again"
            )
        progress(f"{DEBIAN_IMAGE}: importing ({trio.current_time() - started:.1f}s)")
        labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_CONTENT_HASH: bootstrap_hash()}
        changes = [*recipe.changes, "LABEL " + " ".join(f"{key}={value}" for key, value in labels.items())]
        image_id = await client.import_image(tarball, repo=DEBIAN_REPO, tag=DEBIAN_TAG, changes=changes)
    progress(f"{DEBIAN_IMAGE}: bootstrapped in {trio.current_time() - started:.1f}s")
    return image_id
