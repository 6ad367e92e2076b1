"""Download pinned npm registry tarballs, check each against its pinned integrity, unpack what is listed.

Runs in a builder stage with Debian's python3 (no curl, no node):

    python3 fetch_npm_packages.py npm-packages.json /out

npm-packages.json lists packages, each with ``tarball``, ``integrity`` (the registry's ``dist.integrity``,
an SRI ``sha512-<base64>``), ``install`` ({path in the tarball: path under /out}, a file or a directory)
and optional ``links`` ({path under /out: symlink target}). A tarball that does not match its integrity
is refused before anything in it is unpacked.
"""

import base64
import hashlib
import json
import os
import sys
import tarfile
import tempfile
import time
import urllib.request

_ATTEMPTS = 3


def main(manifest_path, out_dir):
    with open(manifest_path, encoding="utf-8") as file:
        packages = json.load(file)["packages"]
    for package in packages:
        with tempfile.TemporaryFile() as tarball:
            _download(package["tarball"], tarball)
            _verify(package, tarball)
            tarball.seek(0)
            with tarfile.open(fileobj=tarball, mode="r:gz") as archive:
                for source, dest in package["install"].items():
                    _unpack(archive, source, os.path.join(out_dir, dest))
        for link, target in package.get("links", {}).items():
            path = os.path.join(out_dir, link)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink(target, path)
        print(f"{package['tarball']}: {package['integrity'][:24]}... ok", flush=True)


def _download(url, file):
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            file.seek(0)
            file.truncate()
            with urllib.request.urlopen(url, timeout=60) as response:
                while chunk := response.read(1 << 20):
                    file.write(chunk)
            return
        except OSError as exc:
            if attempt == _ATTEMPTS:
                sys.exit(f"cannot download {url}: {exc}")
            time.sleep(2 * attempt)


def _verify(package, file):
    algorithm, _, expected = package["integrity"].partition("-")
    if algorithm != "sha512":
        sys.exit(f"{package['tarball']}: pin a sha512 integrity, not {algorithm!r}")
    digest = hashlib.sha512()
    file.seek(0)
    while chunk := file.read(1 << 20):
        digest.update(chunk)
    actual = base64.b64encode(digest.digest()).decode()
    if actual != expected:
        sys.exit(f"{package['tarball']}: integrity mismatch: expected sha512-{expected}, got sha512-{actual}")


def _unpack(archive, source, dest):
    # Only regular files and directories are taken, by name, so a tarball cannot write outside `dest`.
    found = False
    for member in archive.getmembers():
        if member.name != source and not member.name.startswith(source + "/"):
            continue
        relative = member.name[len(source) :].lstrip("/")
        if ".." in relative.split("/"):
            sys.exit(f"refusing tar member {member.name!r}")
        target = os.path.join(dest, relative) if relative else dest
        if member.isdir():
            os.makedirs(target, exist_ok=True)
        elif member.isfile():
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with archive.extractfile(member) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
        else:
            sys.exit(f"refusing tar member {member.name!r}: not a regular file or directory")
        found = True
    if not found:
        sys.exit(f"{source!r} is not in the tarball")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
