import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True)
def _reset_quiet():
    from medconv import log

    log.set_quiet(False)
    yield
    log.set_quiet(False)


@pytest.fixture
def shared_testdata():
    from helpers import SHARED_TESTDATA

    path = os.path.join(SHARED_TESTDATA, "dcm_qa_ts")
    if not os.path.isdir(path):
        pytest.skip("../shared/testdata is not beside this checkout")
    return path
