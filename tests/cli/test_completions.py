"""Shell completions are generated from the CLI and must not go stale."""
import os
import subprocess
import sys

from helpers import ROOT


def test_completions_are_current(tmp_path):
    from medconv.completions import FILES, generate

    generate(str(tmp_path))
    for name in FILES.values():
        repo = os.path.join(ROOT, "completions", name)
        assert os.path.exists(repo), f"completions/{name} missing: run `make completions`"
        with open(repo) as a, open(tmp_path / name) as b:
            assert a.read() == b.read(), f"completions/{name} is stale: run `make completions`"


def test_bash_completion_protocol_offers_commands_and_options():
    env = dict(os.environ, _MEDCONV_COMPLETE="bash_complete", COMP_WORDS="medconv con", COMP_CWORD="1")
    out = subprocess.run([sys.executable, "-m", "medconv"], env=env, capture_output=True, text=True).stdout
    assert "convert" in out
    env.update(COMP_WORDS="medconv convert --for", COMP_CWORD="2")
    out = subprocess.run([sys.executable, "-m", "medconv"], env=env, capture_output=True, text=True).stdout
    assert "--force" in out
