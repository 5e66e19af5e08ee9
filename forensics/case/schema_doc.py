"""`forensics schema`: the case contract as text, JSON or Markdown."""

from __future__ import annotations

import io
import json

from forensics.case.schema import VIEWS, Table
from forensics.output import write_table


def render(tables: tuple[Table, ...], fmt: str) -> str:
    out = io.StringIO()
    if fmt == "json":
        json.dump(
            [
                {
                    "table": t.name,
                    "kind": "table",
                    "description": t.description,
                    "columns": [
                        {
                            "name": c.name,
                            "type": c.type,
                            "description": c.description,
                            "standard": c.standard or None,
                        }
                        for c in t.columns
                    ],
                }
                for t in tables
            ]
            + [
                {"table": name, "kind": "view", "description": text, "columns": []}
                for name, text in VIEWS
            ],
            out,
            indent=1,
        )
        out.write("\n")
    elif fmt == "markdown":
        for t in tables:
            out.write(f"## `{t.name}`\n\n{t.description}\n\n")
            out.write("| column | type | meaning | OTel / ECS |\n|---|---|---|---|\n")
            for c in t.columns:
                std = f"`{c.standard}`" if c.standard else ""
                out.write(f"| `{c.name}` | {c.type} | {c.description} | {std} |\n")
            out.write("\n")
        out.write("## Views\n\n| view | what it is |\n|---|---|\n")
        for name, text in VIEWS:
            out.write(f"| `{name}` | {text} |\n")
        out.write("\n")
    else:
        for t in tables:
            out.write(f"{t.name}: {t.description}\n")
            write_table(
                ["column", "type", "meaning", "otel/ecs"],
                [(c.name, c.type.split()[0], c.description, c.standard) for c in t.columns],
                _Indented(out),
                width=0,  # never cut: the contract is read whole
                cut_cells=False,
            )
            out.write("\n")
        out.write("views:\n")
        for name, text in VIEWS:
            out.write(f"  {name}: {text}\n")
    return out.getvalue()


class _Indented(io.StringIO):
    def __init__(self, target: io.StringIO) -> None:
        super().__init__()
        self._target = target

    def write(self, s: str) -> int:
        return self._target.write("  " + s)
