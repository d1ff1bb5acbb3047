"""Switchboard's container images, built here without Docker: `make images`.

Debian base root filesystems come from `mmdebstrap` (no registry needed); podman builds the
multi-stage Containerfiles in `images/` from them, offline, with the locked wheels
downloaded on the host. Everything is cached under ``~/.cache/switchboard/images``:

- ``bases/<name>-<key>/``: a base's rootfs tarball and its installed Debian packages, and
  ``bases/store/``: the bases as images, which every build's store reads (read-only);
- ``wheels/``: the locked wheels (hash-checked at install);
- ``<key>/``: one build: its image store (``store/``), one ``<image>.oci.tar`` per image,
  and ``build.json``. The key hashes every input (sources, locks, Containerfiles, base
  package lists, this module), so a build runs again only when one of them changes.

Builds are reproducible: SOURCE_DATE_EPOCH is the time of the last commit that touched an
input, file times are clamped to it, and bytecode is hash-checked, so two builds of one
commit give one digest. Debian packages cannot be pinned to old versions: the versions a
base installed are recorded in each image's ``dev.switchboard.debian-packages`` label.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchboard_dev.paths import REPO_ROOT
from switchboard_localcluster.binaries import cache_root
from switchboard_localcluster.podman import Podman

IMAGES_DIR = REPO_ROOT / "images"
IMAGE_NAMES = ("operator", "sfu", "turn")
REPOSITORY = "localhost/switchboard"
"""Where the built images are named: ``localhost/switchboard/<image>:<version>``. A Pod's
``switchboard/<image>:<version>`` finds them (podman's local short-name lookup)."""
SOURCE_URL = "https://github.com/switchboard-dev/switchboard"
SUITE = "bookworm"
PACKAGES_LABEL = "dev.switchboard.debian-packages"
# The sources the project's wheel is built from (the packages the images run).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "api", "operator", "sfu", "turn", "tls")
LOCKS = {name: IMAGES_DIR / name / "requirements.lock" for name in IMAGE_NAMES}
BUILD_LOCK = IMAGES_DIR / "build-requirements.lock"
# mmdebstrap leaves out documentation and translations (copyright files stay).
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
)


@dataclass(frozen=True)
class Base:
    """A Debian root filesystem the images start from."""

    name: str
    variant: str
    packages: tuple[str, ...]

    def spec(self) -> dict[str, Any]:
        return {
            "suite": SUITE,
            "variant": self.variant,
            "packages": list(self.packages),
            "dpkg": list(DPKG_EXCLUDES),
        }

    @property
    def key(self) -> str:
        return _digest(json.dumps(self.spec(), sort_keys=True).encode())[:16]

    @property
    def directory(self) -> Path:
        return images_cache() / "bases" / f"{self.name}-{self.key}"

    @property
    def reference(self) -> str:
        return f"localhost/switchboard-base/{self.name}:{self.key}"


# `essential` has no apt: the final images hold Python, its libraries and nothing to
# install more with. The build base has the compilers (a compiled extension module,
# Cython or Rust, adds its toolchain here) and python3-pip for the naive comparison.
BASES = {
    # libstdc++6: wheels with C++ inside (av, which aiortc uses) link it.
    "runtime": Base("runtime", "essential", ("python3", "libstdc++6")),
    # tini: turnserver sets no SIGTERM handler, and process 1 of a container ignores a
    # signal it does not handle, so a TURN pod sat out its grace period and was SIGKILLed
    # at every rollout and uninstall; tini, as process 1, passes SIGTERM on to it.
    "turn": Base("turn", "essential", ("python3", "coturn", "tini")),
    "build": Base(
        "build",
        "minbase",
        # cargo-web/rustc-web: Debian 12's current Rust (its `cargo` is too old for the
        # SFU module's Cargo.lock), for sfu/fastpath.
        (
            "python3",
            "python3-venv",
            "python3-dev",
            "python3-pip",
            "build-essential",
            "cargo-web",
            "rustc-web",
        ),
    ),
}


BASE_EPOCH = 1_700_000_000
"""File times of the bases: fixed, so a base is the same whatever commit built it first."""


class ImageBuildError(RuntimeError):
    pass


def images_cache() -> Path:
    return cache_root() / "images"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _log(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


# --- inputs and the cache key --------------------------------------------------------------


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def source_files() -> list[Path]:
    """The wheel's source files (tracked, or new and not ignored), relative to the repo."""
    listed = _git("ls-files", "-co", "--exclude-standard", "--", *WHEEL_SOURCES)
    if listed:
        files = [Path(line) for line in listed.splitlines()]
    else:  # not a git checkout: every file but caches
        files = [
            path.relative_to(REPO_ROOT)
            for top in WHEEL_SOURCES
            for path in sorted((REPO_ROOT / top).rglob("*") if (REPO_ROOT / top).is_dir() else [])
        ] + [Path(top) for top in WHEEL_SOURCES if (REPO_ROOT / top).is_file()]
    return sorted(
        path for path in files if (REPO_ROOT / path).is_file() and "__pycache__" not in path.parts
    )


def image_inputs() -> list[Path]:
    """Every file a build reads from the repository, relative to it."""
    recipe = sorted(p.relative_to(REPO_ROOT) for p in IMAGES_DIR.rglob("*") if p.is_file())
    return sorted({*source_files(), *recipe})


def build_key() -> str:
    hasher = hashlib.sha256()
    for path in image_inputs():
        hasher.update(str(path).encode() + b"\0" + (REPO_ROOT / path).read_bytes() + b"\0")
    for base in BASES.values():
        hasher.update(base.key.encode())
    hasher.update(Path(__file__).read_bytes())
    return hasher.hexdigest()[:16]


def project_version() -> str:
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def revision() -> tuple[str, int]:
    """(commit, commit time) of the last commit that touched an input, '-dirty' if edited."""
    paths = [*WHEEL_SOURCES, "images"]
    line = _git("log", "-1", "--format=%H %ct", "--", *paths)
    if not line:
        return "unknown", 0
    commit, epoch = line.split()
    if _git("status", "--porcelain", "--", *paths):
        commit += "-dirty"
    return commit, int(epoch)


# --- the build -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltImages:
    """One cached build: its store and what it holds."""

    directory: Path
    manifest: dict[str, Any]

    @property
    def store(self) -> Path:
        return self.directory / "store"

    @property
    def stores(self) -> list[Path]:
        """Every store a node needs to run the images: this build's, then the bases'."""
        return [self.store, bases_store()]

    def reference(self, name: str) -> str:
        return str(self.manifest["images"][name]["reference"])

    def archive(self, name: str) -> Path:
        return self.directory / f"{name}.oci.tar"

    def podman(self) -> Podman:
        return Podman(root=self.store, image_stores=(bases_store(),))


def bases_store() -> Path:
    return images_cache() / "bases" / "store"


def import_base(base: Base) -> None:
    """The base's rootfs as an image in the shared bases store (once per base)."""
    with (
        _locked(bases_store().with_suffix(".lock")),
        tempfile.TemporaryDirectory(prefix="switchboard-base-") as scratch,
    ):
        podman = Podman(root=bases_store())
        if podman.inspect_image(base.reference) is not None:
            return
        context = Path(scratch) / "context"
        context.mkdir()
        (context / "Containerfile").write_text("FROM scratch\nADD rootfs.tar /\n")
        os.link(base.directory / "rootfs.tar", context / "rootfs.tar")
        _build(podman, context, "Containerfile", base.reference, f"--timestamp={BASE_EPOCH}")


def build_directory(key: str | None = None) -> Path:
    return images_cache() / (key or build_key())


def built(key: str | None = None) -> BuiltImages | None:
    """The cached build for the current sources, or None (then run `make images`)."""
    directory = build_directory(key)
    try:
        manifest = json.loads((directory / "build.json").read_text())
        # Its time is the build's last use: other checkouts' recent builds are kept.
        os.utime(directory / "build.json")
    except (OSError, ValueError):
        return None
    return BuiltImages(directory, manifest)


def require_built() -> BuiltImages:
    images = built()
    if images is None:
        raise ImageBuildError(
            "the container images for these sources are not built: run `make images` "
            f"(expected in {build_directory()})"
        )
    return images


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise ImageBuildError(f"{' '.join(argv[:3])} failed:\n{tail}")
    return result


def build_base(base: Base) -> Path:
    """The base's rootfs tarball (mmdebstrap), built once per package list."""
    directory = base.directory
    with _locked(directory.with_suffix(".lock")):
        if (directory / ".complete").exists():
            return directory
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        started = time.monotonic()
        _log(f"mmdebstrap {base.name} base ({', '.join(base.packages)})")
        packages = directory / "packages.txt"
        _run(
            [
                "mmdebstrap",
                "--mode=root",
                f"--variant={base.variant}",
                f"--include={','.join(base.packages)}",
                *(f"--dpkgopt={option}" for option in DPKG_EXCLUDES),
                "--skip=output/dev",
                '--customize-hook=chroot "$1" dpkg-query -W '
                f"-f='${{Package}}=${{Version}}\\n' > {packages}",
                SUITE,
                str(directory / "rootfs.tar"),
            ],
            env={**os.environ, "SOURCE_DATE_EPOCH": str(BASE_EPOCH)},
        )
        (directory / "seconds").write_text(f"{time.monotonic() - started:.1f}\n")
        (directory / ".complete").touch()
        return directory


def download_wheels(locks: Sequence[Path]) -> Path:
    """The locked wheels, fetched once into the shared wheel cache (hashes checked)."""
    wheels = images_cache() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    with _locked(wheels.with_suffix(".lock")):
        for lock in locks:
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--require-hashes",
                    "--only-binary=:all:",
                    "--dest",
                    str(wheels),
                    "-r",
                    str(lock),
                ]
            )
    return wheels


FASTPATH = REPO_ROOT / "sfu" / "fastpath"


def vendor_crates() -> Path:
    """The SFU module's crates (its Cargo.lock), vendored once per lock: the build stage
    compiles it offline."""
    lock = FASTPATH / "Cargo.lock"
    vendor = images_cache() / "vendor" / _digest(lock.read_bytes())[:16]
    with _locked(vendor.with_suffix(".lock")):
        if not (vendor / ".complete").exists():
            shutil.rmtree(vendor, ignore_errors=True)
            _run(
                [
                    "cargo",
                    "vendor",
                    "--quiet",
                    "--locked",
                    "--manifest-path",
                    str(FASTPATH / "Cargo.toml"),
                    str(vendor / "crates"),
                ]
            )
            (vendor / ".complete").touch()
    return vendor


def _locked_files(lock: Path) -> list[str]:
    """`name==version` of each requirement in a lock file."""
    return [
        line.split()[0]
        for line in lock.read_text().splitlines()
        if line and not line.startswith(("#", " ")) and "==" in line
    ]


def _stage_context(context: Path, wheels: Path) -> None:
    """The build context: the wheel's sources, the recipe, and the locked wheels."""
    for path in source_files():
        target = context / "src" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / path, target)
    for path in IMAGES_DIR.rglob("*"):
        if path.is_file():
            target = context / path.relative_to(IMAGES_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    wanted = {
        requirement.split("==")[0].lower().replace("-", "_")
        for lock in [*LOCKS.values(), BUILD_LOCK]
        for requirement in _locked_files(lock)
    }
    (context / "wheels").mkdir()
    for wheel in wheels.glob("*.whl"):
        if wheel.name.split("-")[0].lower() in wanted:
            os.link(wheel, context / "wheels" / wheel.name)
    shutil.copytree(vendor_crates() / "crates", context / "crates")


def _labels(name: str, version: str, commit: str, epoch: int, base: Base) -> list[str]:
    packages = (base.directory / "packages.txt").read_text().split()
    labels = {
        "org.opencontainers.image.title": f"switchboard-{name}",
        "org.opencontainers.image.description": f"Switchboard {name}",
        "org.opencontainers.image.source": SOURCE_URL,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": commit,
        "org.opencontainers.image.created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)),
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.base.name": f"debian:{SUITE} ({base.variant}, mmdebstrap)",
        PACKAGES_LABEL: ",".join(sorted(packages)),
    }
    return [f"--label={key}={value}" for key, value in labels.items()]


def _build(podman: Podman, context: Path, containerfile: str, tag: str, *args: str) -> None:
    podman.run(
        "build",
        "--quiet",
        "--network=none",
        "--pull=never",
        "--ulimit=nofile=20000:20000",
        "--ulimit=nproc=4096:4096",
        f"--file={context / containerfile}",
        f"--tag={tag}",
        *args,
        str(context),
        timeout=1800,
    )


def build(naive: bool = False) -> BuiltImages:
    """Build the images for the current sources unless the cache has them."""
    key = build_key()
    directory = build_directory(key)
    with _locked(directory.with_suffix(".lock")):
        cached = built(key)
        if cached is not None and (not naive or "naive" in cached.manifest):
            return cached
        started = time.monotonic()
        commit, epoch = revision()
        version = project_version()
        with ThreadPoolExecutor(max_workers=len(BASES)) as pool:
            for future in [pool.submit(build_base, base) for base in BASES.values()]:
                future.result()
        for base in BASES.values():
            import_base(base)
        bases_done = time.monotonic()
        wheels = download_wheels([*LOCKS.values(), BUILD_LOCK])
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        with tempfile.TemporaryDirectory(prefix="switchboard-images-") as scratch:
            podman = Podman(root=directory / "store", image_stores=(bases_store(),))
            context = Path(scratch) / "context"
            _stage_context(context, wheels)
            timestamp = f"--timestamp={epoch}"
            wheel_image = f"localhost/switchboard-build/wheel:{key}"
            _build(
                podman,
                context,
                "wheel.Containerfile",
                wheel_image,
                timestamp,
                f"--build-arg=BUILD_BASE={BASES['build'].reference}",
                f"--build-arg=SOURCE_DATE_EPOCH={epoch}",
            )
            manifest: dict[str, Any] = {"key": key, "revision": commit, "images": {}}
            for name in IMAGE_NAMES:
                base = BASES["turn"] if name == "turn" else BASES["runtime"]
                reference = f"{REPOSITORY}/{name}:{version}"
                _log(f"building {reference}")
                _build(
                    podman,
                    context,
                    f"{name}/Containerfile",
                    reference,
                    timestamp,
                    f"--build-arg=WHEEL_IMAGE={wheel_image}",
                    f"--build-arg=RUNTIME_BASE={BASES['runtime'].reference}",
                    f"--build-arg=TURN_BASE={BASES['turn'].reference}",
                    *_labels(name, version, commit, epoch, base),
                )
                archive = directory / f"{name}.oci.tar"
                podman.run("save", "--format=oci-archive", f"--output={archive}", reference)
                info = podman.inspect_image(reference) or {}
                manifest["images"][name] = {
                    "reference": reference,
                    "id": f"sha256:{info.get('Id', '')}",
                    "digest": info.get("Digest", ""),
                    "size": int(info.get("Size", 0)),
                    "archive": archive.name,
                }
            if naive:
                _build(
                    podman,
                    context,
                    "naive.Containerfile",
                    "localhost/switchboard-naive/all:latest",
                    timestamp,
                    f"--build-arg=BUILD_BASE={BASES['build'].reference}",
                )
                info = podman.inspect_image("localhost/switchboard-naive/all:latest") or {}
                manifest["naive"] = {"size": int(info.get("Size", 0))}
            # The build stages stay out of the store nodes read from.
            podman.run("rmi", "--force", wheel_image, check=False)
            podman.run("image", "prune", "--force", check=False)
        manifest["seconds"] = {
            "bases": round(bases_done - started, 1),
            "total": round(time.monotonic() - started, 1),
        }
        (directory / "build.json").write_text(json.dumps(manifest, indent=2) + "\n")
    prune(keep=directory)
    return BuiltImages(directory, manifest)


KEEP_BUILDS = 4
KEEP_USED_SECONDS = 2 * 86400


def prune(keep: Path) -> None:
    """Remove builds unused for two days, beyond the newest few: other checkouts on this
    machine (and their running tests) use the builds of their own sources."""
    builds = sorted(
        (p for p in images_cache().iterdir() if (p / "build.json").exists() and p != keep),
        key=lambda p: (p / "build.json").stat().st_mtime,
        reverse=True,
    )
    stale = time.time() - KEEP_USED_SECONDS
    for old in builds[KEEP_BUILDS - 1 :]:
        if (old / "build.json").stat().st_mtime > stale:
            continue
        with _locked(old.with_suffix(".lock")):
            Podman(root=old / "store").run("system", "reset", "--force", check=False)
            shutil.rmtree(old, ignore_errors=True)
        old.with_suffix(".lock").unlink(missing_ok=True)


def summary(images: BuiltImages) -> str:
    lines = [f"{'image':<44} {'size':>9}  id"]
    naive = images.manifest.get("naive", {}).get("size")
    for name in IMAGE_NAMES:
        info = images.manifest["images"][name]
        size = info["size"] / 1e6
        ratio = f"  ({info['size'] / naive:.0%} of the naive image)" if naive else ""
        lines.append(f"{info['reference']:<44} {size:7.1f}MB  {info['id'][:19]}{ratio}")
    if naive:
        lines.append(f"{'naive (python3-pip + build-essential + pip)':<44} {naive / 1e6:7.1f}MB")
    lines.append(f"archives: {images.directory}")
    return "\n".join(lines)


# --- locking the dependencies -------------------------------------------------------------


def lock() -> None:
    """Resolve each requirements.in to pinned versions with the hash of each wheel."""
    inputs = [(IMAGES_DIR / "build-requirements.in", BUILD_LOCK)] + [
        (IMAGES_DIR / name / "requirements.in", LOCKS[name]) for name in IMAGE_NAMES
    ]
    for source, target in inputs:
        with tempfile.TemporaryDirectory() as scratch:
            report = Path(scratch) / "report.json"
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--dry-run",
                    "--ignore-installed",
                    "--only-binary=:all:",
                    f"--report={report}",
                    "-r",
                    str(source),
                ]
            )
            resolved = json.loads(report.read_text())["install"]
        lines = [
            f"# Generated by `switchboard-dev images lock` from {source.name}: do not edit.",
        ]
        for item in sorted(resolved, key=lambda i: i["metadata"]["name"].lower()):
            archive = item["download_info"]["archive_info"]
            sha256 = archive.get("hashes", {}).get("sha256") or archive["hash"].split("=", 1)[1]
            name = item["metadata"]["name"].lower()
            lines.append(f"{name}=={item['metadata']['version']} \\\n    --hash=sha256:{sha256}")
        target.write_text("\n".join(lines) + "\n")
        _log(f"wrote {target.relative_to(REPO_ROOT)} ({len(resolved)} packages)")


RUNTIME_ENV = "SWITCHBOARD_RUNTIME"
"""`process` runs the SFU and coturn as local processes (a fast inner loop) instead of the
images; anything else, or unset, runs the images (`make up` and CI)."""


def process_runtime_selected() -> bool:
    return os.environ.get(RUNTIME_ENV, "") == "process"


def agent_image_stores() -> list[Path]:
    """The image stores node agents run pods from: the built images, unless the process
    runtime was selected (then the agents' local stand-ins run instead)."""
    return [] if process_runtime_selected() else require_built().stores


def image_reference(name: str) -> str:
    """How the chart names an image by default (`switchboard/<name>:<version>`)."""
    return f"switchboard/{name}:{project_version()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard-dev images", description=__doc__)
    parser.add_argument("command", nargs="?", choices=("build", "lock", "path"), default="build")
    parser.add_argument(
        "--naive", action="store_true", help="also build the naive image, for the size comparison"
    )
    args = parser.parse_args(argv)
    if args.command == "lock":
        lock()
        return 0
    if args.command == "path":
        print(require_built().directory)
        return 0
    started = time.monotonic()
    cached = built()
    images = build(naive=args.naive)
    took = time.monotonic() - started
    state = (
        "cached"
        if cached is not None and (not args.naive or "naive" in cached.manifest)
        else "built"
    )
    print(summary(images))
    print(f"images: {state} in {took:.1f}s (key {images.manifest['key']})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
