"""The mutation fuzzer (tests/fuzz/campaign.py) over every format and command: a fixed seed and
a bounded budget in the suite; `make fuzz SEED=N` runs it longer."""
from __future__ import annotations

import os

import pytest

#: seconds of fuzzing in the test suite (MEDCONV_FUZZ_BUDGET changes it; 0 skips)
BUDGET = float(os.environ.get("MEDCONV_FUZZ_BUDGET", "45"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the campaign forks one child per call")
@pytest.mark.skipif(BUDGET <= 0, reason="MEDCONV_FUZZ_BUDGET=0")
def test_fixed_seed_campaign_keeps_the_contract(monkeypatch):
    import campaign

    # the campaign sets these for its children: restored afterwards, so later tests in this process
    # (anonymize's warning about a missing key) see the environment they started with
    for name in ("MEDCONV_ANON_KEY", "MEDCONV_DEBUG", "MEDCONV_ALLOW_EXTERNAL_DATA"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
        monkeypatch.delenv(name)

    figures = campaign.campaign(seed=20261206, calls=None, budget=BUDGET, everything=False, report=lambda m: None)
    assert figures["calls"] >= min(40, figures["seed_files"]), figures
    problems = [f"{f['problem']}: {f['seed_file']} | medconv {f['command']} | exit {f['code']}\n{f['stderr']}"
                for f in figures["failures"]]
    assert not problems, "\n\n".join(problems)
    assert figures["tracebacks"] == figures["exit_70"] == figures["hangs"] == 0


def test_judge_flags_what_breaks_the_contract():
    import campaign

    ok = {"code": 3, "out": "", "err": "medconv: error: x: corrupt\n", "hung": False}
    assert campaign.judge(["info", "x"], ok) is None
    assert campaign.judge(["info", "x"], dict(ok, code=70, err="medconv: error: internal error: X")) == "exit 70"
    assert campaign.judge(["info", "x"], dict(ok, err="Traceback (most recent call last):\n")) == "traceback"
    assert campaign.judge(["info", "x"], dict(ok, hung=True)) == "hang"
    assert campaign.judge(["info", "x"], dict(ok, err="medconv: error: " + "x" * 5000)) == "error line too long"
    assert campaign.judge(["info", "--json", "x"], dict(ok, code=0, out="{bad")) == "invalid JSON"
    assert campaign.judge(["info", "x"], dict(ok, code=0, out="\x1b]0;t\x07")) == "raw escape printed"
    assert campaign.judge(["anonymize", "--check", "x"], dict(ok, code=1, err="")) is None
