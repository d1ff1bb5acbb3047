"""Image references resolve to the configured local installation, by repository or exactly."""

import pytest

from switchboard_localcluster.nodeagent.images import ImageCatalogue, ImageReference, LocalImage

SFU = LocalImage(entrypoint=("switchboard-sfu",))
SFU_PINNED = LocalImage(entrypoint=("/opt/sfu-0.1/bin/switchboard-sfu",))
COTURN = LocalImage(entrypoint=("/usr/bin/turnserver",))
CATALOGUE = ImageCatalogue(
    {"switchboard/sfu": SFU, "switchboard/sfu:0.1": SFU_PINNED, "coturn/coturn": COTURN}
)


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("switchboard/sfu", SFU),
        ("switchboard/sfu:latest", SFU),
        ("switchboard/sfu@sha256:abcd", SFU),
        ("switchboard/sfu:0.1", SFU_PINNED),
        ("docker.io/switchboard/sfu:0.2", SFU),
        ("coturn/coturn:4.6", COTURN),
        ("index.docker.io/coturn/coturn:4.6-alpine", COTURN),
        ("ghcr.io/switchboard/sfu:0.1", None),
        ("switchboard/sfu-debug", None),
        ("nginx", None),
    ],
)
def test_resolution(reference: str, expected: LocalImage | None) -> None:
    assert CATALOGUE.resolve(reference) == expected


def test_registry_port_is_not_a_tag() -> None:
    ref = ImageReference.parse("localhost:5000/team/app:1.2@sha256:ff")
    assert (ref.repository, ref.tag, ref.digest) == ("localhost:5000/team/app", "1.2", "sha256:ff")


def test_official_images_compare_equal_with_and_without_library_prefix() -> None:
    catalogue = ImageCatalogue({"busybox": SFU})
    assert catalogue.resolve("docker.io/library/busybox:1.36") == SFU


def test_not_runnable_message_names_the_image_and_the_configured_images() -> None:
    message = CATALOGUE.not_runnable_message("nginx:1.25")
    assert "nginx:1.25" in message
    assert "switchboard/sfu" in message
    assert "coturn/coturn" in message
