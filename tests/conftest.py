import os

import pytest


@pytest.fixture(autouse=True)
def _reset_quiet():
    from medconv import log

    log.set_quiet(False)
    yield
    log.set_quiet(False)


@pytest.fixture
def dcm_qa_ts():
    """One MR slice in nine transfer syntaxes with dcm2niix's reference output (tests/data, BSD-2)."""
    from helpers import TESTDATA

    return os.path.join(TESTDATA, "dcm_qa_ts")


@pytest.fixture
def vendor_testdata():
    """The vendor DICOM corpora (about 90 MB, not in the repository), from $MEDCONV_VENDOR_TESTDATA."""
    from helpers import VENDOR_TESTDATA_ENV

    path = os.environ.get(VENDOR_TESTDATA_ENV, "")
    if not path or not os.path.isdir(path):
        pytest.skip(f"needs the vendor DICOM corpora (real scanner exports, ~90 MB, kept outside the "
                    f"repository): set {VENDOR_TESTDATA_ENV} to their folder")
    return path
