"""The example objects shipped in examples/, as the API type tests load them."""

from pathlib import Path
from typing import Any

import yaml

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


def example_objects() -> list[dict[str, Any]]:
    """Every object in examples/, in file order."""
    return [
        document
        for path in sorted(EXAMPLES_DIR.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def first_example(kind: str) -> dict[str, Any]:
    return next(obj for obj in example_objects() if obj["kind"] == kind)
