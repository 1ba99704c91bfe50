"""Shell completion scripts generated from the click group: `python -m medconv.completions DIR`.

The scripts call back into medconv (click's completion protocol), so they follow new commands
and options by themselves; regenerate them only when the protocol or program name changes.
"""
from __future__ import annotations

import os
import sys

FILES = {"bash": "medconv.bash", "zsh": "_medconv", "fish": "medconv.fish"}


def render(shell: str) -> str:
    from click.shell_completion import get_completion_class

    from .cli import cli

    cls = get_completion_class(shell)
    return cls(cli, {}, "medconv", "_MEDCONV_COMPLETE").source()


def generate(outdir: str) -> list:
    os.makedirs(outdir, exist_ok=True)
    written = []
    for shell, name in FILES.items():
        path = os.path.join(outdir, name)
        text = render(shell)
        if shell == "zsh" and not text.startswith("#compdef"):
            text = "#compdef medconv\n" + text
        with open(path, "w") as fh:
            fh.write(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in generate(sys.argv[1] if len(sys.argv) > 1 else "completions"):
        print(p)
