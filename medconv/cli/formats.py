"""medconv formats: the formats medconv reads and writes, from the registry."""
from __future__ import annotations

import click

from . import options


@click.command("formats")
@options.json_out
def command(as_json):
    """List every format: name, extensions, read/write, what a written file can hold.

    \b
    Example:
      medconv formats --json
    """
    from ..formats import list_formats
    from . import render

    records = [{"format": f.name, "extensions": list(f.extensions), "read": True, "write": f.can_write,
                "dtypes": list(f.dtypes), "ndims": list(f.ndims), "colour": list(f.colour),
                "geometry": f.geometry, "description": f.description} for f in list_formats()]
    render.render(records, as_json=as_json, many=True,
                  columns=("format", "extensions", "write", "ndims", "geometry", "description"))
