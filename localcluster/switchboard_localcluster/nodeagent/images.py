"""Which container images the agent can run, and the local program that stands in for each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")
DOCKER_HUB_OFFICIAL = "library/"


@dataclass(frozen=True)
class ImageReference:
    """An image reference split into repository, tag and digest (registry kept in repository)."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, reference: str) -> ImageReference:
        rest, _, digest = reference.partition("@")
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        # A colon before the last slash is a registry port, not a tag.
        if colon > slash:
            repository, tag = rest[:colon], rest[colon + 1 :]
        else:
            repository, tag = rest, None
        return cls(repository=normalise_repository(repository), tag=tag, digest=digest or None)

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def normalise_repository(repository: str) -> str:
    """Drop Docker Hub's implicit registry and `library/` prefix so equal images compare equal."""
    for alias in DOCKER_HUB_ALIASES:
        if repository.startswith(alias):
            repository = repository[len(alias) :]
            break
    if repository.startswith(DOCKER_HUB_OFFICIAL):
        repository = repository[len(DOCKER_HUB_OFFICIAL) :]
    return repository


@dataclass(frozen=True)
class LocalImage:
    """A local installation standing in for an image: its entrypoint and its image env."""

    entrypoint: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    keep_visible: tuple[str, ...] = ()
    """Host directories holding the installation: a volume mounted over one of their
    ancestors (an emptyDir at /tmp, say) must not hide them from the container."""


class ImageCatalogue:
    """Resolves a Pod's image reference to the local installation configured for it.

    A configured name with a tag or digest matches that exact image; one without matches
    every tag and digest of the repository. Exact matches win over repository matches.
    """

    def __init__(self, images: Mapping[str, LocalImage]) -> None:
        self._exact: dict[ImageReference, LocalImage] = {}
        self._by_repository: dict[str, LocalImage] = {}
        for name, image in images.items():
            ref = ImageReference.parse(name)
            if ref.tag is None and ref.digest is None:
                self._by_repository[ref.repository] = image
            else:
                self._exact[ref] = image
        self._names = tuple(sorted(images))

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def resolve(self, reference: str) -> LocalImage | None:
        ref = ImageReference.parse(reference)
        exact = self._exact.get(ref)
        if exact is not None:
            return exact
        return self._by_repository.get(ref.repository)

    def not_runnable_message(self, reference: str) -> str:
        known = ", ".join(self._names) or "none"
        return (
            f"image {reference!r} has no local installation on this node agent "
            f"(configured images: {known})"
        )
