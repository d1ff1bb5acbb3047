"""The installed Switchboard version (pyproject.toml is its one source)."""

from importlib.metadata import version
from typing import Final

SWITCHBOARD_VERSION: Final = version("switchboard")
