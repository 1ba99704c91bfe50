"""medconv formats: the formats medconv reads and writes, from the registry."""
from __future__ import annotations

import click


@click.command("formats")
@click.option("--json", "as_json", is_flag=True, help="Print the table as one JSON list (one object per format).")
def command(as_json):
    """List every format medconv knows: its extensions, whether medconv writes it, the
    dimensions (2D-4D) and types a written file holds, and whether it keeps geometry.

    \b
    Example:
      medconv formats --json
    """
    from ..formats import list_formats
    from . import render

    records = [{"format": f.name, "extensions": list(f.extensions), "read": True, "write": f.can_write,
                "dtypes": list(f.dtypes), "ndims": list(f.ndims), "colour": list(f.colour),
                "geometry": f.geometry, "description": f.description} for f in list_formats()]
    if not as_json:  # the table: yes/no and a range of dimensions; --json keeps booleans and lists
        records = [{**r, "write": _yes(r["write"]), "geometry": _yes(r["geometry"]), "ndims": _dims(r["ndims"])}
                   for r in records]
    render.render(records, as_json=as_json, many=True,
                  columns=("format", "extensions", "write", "ndims", "geometry", "description"))


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _dims(ndims) -> str:
    """2D-4D for a contiguous range, 2D for one value."""
    ndims = sorted(ndims)
    if len(ndims) == 1:
        return f"{ndims[0]}D"
    if ndims == list(range(ndims[0], ndims[-1] + 1)):
        return f"{ndims[0]}D-{ndims[-1]}D"
    return ", ".join(f"{n}D" for n in ndims)
