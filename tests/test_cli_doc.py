"""docs/cli.md stays true: every command, option, exit code and environment variable it names
exists in medconv (what exists but is not named is not checked here)."""
from __future__ import annotations

import os
import re
import signal

import click
import pytest

from helpers import ROOT

DOC = os.path.join(ROOT, "docs", "cli.md")
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def _doc() -> str:
    with open(DOC, encoding="utf-8") as fh:
        return fh.read()


def _commands() -> dict:
    """{command name: set of its option strings}, plus '' for the group's own options."""
    from medconv.cli import cli

    ctx = click.Context(cli)
    helps = set(cli.context_settings.get("help_option_names", ["--help"]))

    def opts(cmd):
        found = set(helps)
        for p in cmd.params:
            if isinstance(p, click.Option):
                found.update(p.opts)
                found.update(p.secondary_opts)
        return found

    out = {"": opts(cli)}
    for name in cli.list_commands(ctx):
        out[name] = opts(cli.get_command(ctx, name))
    return out


def _code_spans(text: str) -> list:
    return re.findall(r"`([^`\n]+)`", text)


def _sections(text: str):
    """(command or None, section text) for each section; a `### ` heading naming a medconv
    command scopes its section to that command, any other heading to no command."""
    parts = re.split(r"^#{2,3} ", text, flags=re.M)
    yield None, parts[0]
    for part in parts[1:]:
        heading = part.splitlines()[0]
        m = re.match(r"`medconv ([a-z]+)", heading)
        yield (m.group(1) if m else None), part


def test_readme_links_the_cli_doc():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        assert "(docs/cli.md)" in fh.read()


def test_every_command_named_exists():
    commands = _commands()
    named = set()
    for span in _code_spans(_doc()):
        for m in re.finditer(r"\bmedconv ([a-z][\w-]*)", span):
            named.add(m.group(1))
    assert named, "the page names no command"
    missing = sorted(n for n in named if n not in commands)
    assert not missing, f"docs/cli.md names commands medconv does not have: {missing}"


def test_every_option_named_exists_where_it_is_named():
    commands = _commands()
    everywhere = set().union(*commands.values())
    problems = []
    for command, text in _sections(_doc()):
        allowed = everywhere if command is None else commands.get(command, set()) | commands[""]
        for span in _code_spans(text):
            if span.startswith("medconv ") and command is None:
                # `medconv convert ... --to x`: the option belongs to the command in the span
                m = re.match(r"medconv (?:--?[\w-]+ )*([a-z]+)", span)
                scope = commands.get(m.group(1), set()) | commands[""] if m else everywhere
            else:
                scope = allowed
            for opt in OPTION.findall(span):
                if opt not in scope:
                    problems.append((command or "global", opt, span))
    assert not problems, f"options named in docs/cli.md that medconv does not have there: {problems}"


def test_every_exit_code_named_exists():
    from medconv import errors

    known = {0, errors.ExitStatus.INTERNAL}
    known.update(cls.exit_code for cls in vars(errors).values()
                 if isinstance(cls, type) and issubclass(cls, errors.MedconvError))
    # a stop signal ends the run with 128 + its number (Ctrl-C: 130)
    known.update(128 + getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
    text = _doc()
    table = text[text.index("## Exit codes"):]
    table = table[: table.index("\n## ", 1)]
    codes = [int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)]
    assert codes, "no exit code table"
    assert not sorted(set(codes) - known), f"exit codes named but never used: {sorted(set(codes) - known)}"


def test_every_environment_variable_named_is_read_by_medconv():
    text = _doc()
    names = set(re.findall(r"\b(MEDCONV_[A-Z_]+)\b", text))
    assert names
    source = []
    for root, _, files in os.walk(os.path.join(ROOT, "medconv")):
        for f in files:
            if f.endswith(".py"):
                with open(os.path.join(root, f), encoding="utf-8") as fh:
                    source.append(fh.read())
    source = "\n".join(source)
    missing = sorted(n for n in names if f'"{n}"' not in source)
    assert not missing, f"environment variables named but never read: {missing}"


@pytest.mark.parametrize("token", ["nii", "nii.gz", "hdr", "img", "mhd", "mha", "nrrd", "nhdr", "mgh", "mgz", "mnc",
                                   "png", "jpg", "tif", "bmp", "dcm"])
def test_every_to_extension_named_is_accepted(token):
    from medconv.formats import output_choice

    assert f"`{token}`" in _doc()
    fmt, ext = output_choice(token)
    assert ext == "/" if token == "dcm" else ext == "." + token or (token == "img" and ext == ".img")
