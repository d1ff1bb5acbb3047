"""Renders docs/metrics.md's tables from `switchboard_api.metrics`, so the reference cannot
drift from the registry (`python -m switchboard_api.metrics_doc` rewrites the generated block;
tests/api/test_metrics_registry.py fails while it is stale)."""

import sys
from collections.abc import Iterable
from pathlib import Path

from switchboard_api import metrics

METRICS_DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
BEGIN = "<!-- BEGIN GENERATED: python -m switchboard_api.metrics_doc -->"
END = "<!-- END GENERATED -->"


def _table(title: str, specs: Iterable[metrics.MetricSpec]) -> str:
    rows = [
        f"| `{spec.name}` | {spec.type} | {', '.join(f'`{label}`' for label in spec.labels)} "
        f"| {spec.help} |"
        for spec in specs
    ]
    return "\n".join(
        [f"### {title}", "", "| Metric | Type | Labels | Meaning |", "|---|---|---|---|", *rows]
    )


def render() -> str:
    body = "\n\n".join([_table("Operator", metrics.OPERATOR), _table("SFU", metrics.SFU)])
    return f"{BEGIN}\n\n{body}\n\n{END}"


def with_fresh_tables(document: str) -> str:
    start, end = document.index(BEGIN), document.index(END) + len(END)
    return document[:start] + render() + document[end:]


def main() -> int:
    METRICS_DOC.write_text(with_fresh_tables(METRICS_DOC.read_text()))
    print(f"wrote {METRICS_DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
