"""What the built images hold: their entrypoints, their user, no build tools, a read-only root.

Each check runs the image through podman as a Pod would (read-only root filesystem, no
capabilities, no privilege escalation, no network).
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from fixtures.waiting import wait_for
from switchboard_dev.images import IMAGE_NAMES, PACKAGES_LABEL, BuiltImages, require_built

NONROOT = "65532"
STOP_GRACE_SECONDS = 20
ENTRYPOINTS = {
    "operator": ["switchboard-operator"],
    "sfu": ["switchboard-sfu"],
    "turn": ["switchboard-turn-secret-sync"],
}
# Found by none of the images: compilers, package managers, the build stage's leftovers.
ABSENT = ["gcc", "cc", "c++", "make", "ld", "cargo", "rustc", "pip", "pip3", "apt-get", "apt"]
LEFTOVERS = ["/wheels", "/src", "/dist", "/opt/build", "/opt/build-inputs", "/root/.cache"]
AS_A_POD = [
    "--network=none",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--ulimit=nofile=1024:1024",
    "--ulimit=nproc=256:256",
]
"""How a Pod runs a container: no network here, no capabilities, no privilege escalation,
and the limits this podman may set."""


@pytest.fixture(scope="module")
def images() -> BuiltImages:
    return require_built()


def run(images: BuiltImages, name: str, *command: str, entrypoint: str | None = None) -> str:
    args = ["run", "--rm", "--read-only", "--read-only-tmpfs=false", *AS_A_POD]
    if entrypoint is not None:
        args.append(f"--entrypoint={entrypoint}")
    result = images.podman().run(*args, images.reference(name), *command, check=False)
    assert result.returncode == 0, f"{name} {command}: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_entrypoints_answer_help_as_the_images_non_root_user(images, name):
    for program in ENTRYPOINTS[name]:
        assert "usage" in run(images, name, "--help", entrypoint=program).lower()
    whoami = "import os; print(os.getuid(), os.getgid())"
    assert run(images, name, "-c", whoami, entrypoint="python3").split() == [NONROOT, NONROOT]


def test_the_sfu_image_carries_its_native_fast_path(images):
    # Built from sfu/fastpath (Rust) in the build stage; the final image has no Rust.
    probe = "import switchboard_sfu._fastpath as f; print(f.__file__)"
    assert "_fastpath" in run(images, "sfu", "-c", probe, entrypoint="python3")


def test_the_turn_image_runs_debians_coturn(images):
    # turnserver prints its help and exits non-zero; its version line is enough here.
    out = run(
        images,
        "turn",
        "-c",
        "import shutil; print(shutil.which('turnserver'))",
        entrypoint="python3",
    )
    assert out.strip() == "/usr/bin/turnserver"


def test_the_turn_images_entrypoint_stops_coturn_on_sigterm(images):
    """A pod's containers get SIGTERM, and SIGKILL only after the grace period. turnserver
    sets no SIGTERM handler, and a container's process 1 ignores a signal it does not
    handle: the entrypoint's init (tini) is process 1 and passes SIGTERM on."""
    podman = images.podman()
    name = f"switchboard-turn-sigterm-{os.getpid()}"
    podman.run(
        "run",
        "--detach",
        f"--name={name}",
        *AS_A_POD,
        images.reference("turn"),
        "--no-cli",
        "--listening-ip=127.0.0.1",
        "--log-file=stdout",
        "--userdb=/tmp/turndb",
    )
    try:
        wait_for(
            lambda: "Relay ports initialization done" in podman.run("logs", name).stdout,
            60,
            "coturn serving",
        )
        state = podman.run("inspect", "--format={{.State.Status}}", name).stdout.strip()
        assert state == "running", podman.run("logs", name).stdout
        podman.run("stop", f"--time={STOP_GRACE_SECONDS}", name, timeout=STOP_GRACE_SECONDS + 60)
        code = int(podman.run("inspect", "--format={{.State.ExitCode}}", name).stdout)
        assert code != 128 + signal.SIGKILL, "coturn ignored SIGTERM and was killed"
    finally:
        podman.run("rm", "--force", name, check=False)


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_no_build_tools_caches_or_dev_packages_are_left(images, name):
    probe = (
        "import importlib.util, json, os, shutil; print(json.dumps({"
        f"'tools': [t for t in {ABSENT!r} if shutil.which(t)],"
        f"'leftovers': [p for p in {LEFTOVERS!r} if os.path.exists(p)],"
        "'dev': [m for m in ('switchboard_dev', 'switchboard_localcluster', 'pytest', 'pip')"
        " if importlib.util.find_spec(m)],"
        "}))"
    )
    found = json.loads(run(images, name, "-c", probe, entrypoint="python3"))
    assert found == {"tools": [], "leftovers": [], "dev": []}


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_labels_name_the_source_version_revision_and_debian_packages(images, name):
    info = images.podman().inspect_image(images.reference(name))
    assert info is not None
    labels = info["Config"]["Labels"]
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.version"] == images.reference(name).rsplit(":", 1)[1]
    assert labels["org.opencontainers.image.revision"]
    packages = dict(item.split("=", 1) for item in labels[PACKAGES_LABEL].split(","))
    assert "python3" in packages
    assert ("coturn" in packages) == (name == "turn")
    assert info["Config"]["User"] == f"{NONROOT}:{NONROOT}"
    assert images.archive(name).stat().st_size > 0
