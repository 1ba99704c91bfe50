"""Small gzip outputs are compressed on the calling thread (no writer threads to start and join)."""
import gzip
import threading

import numpy as np

from medconv import fileio


def test_small_output_is_written_without_threads(tmp_path, monkeypatch):
    started = []
    real_start = threading.Thread.start

    def counting_start(self):
        started.append(self.name)
        return real_start(self)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    payload = np.arange(50_000, dtype=np.int16).tobytes()  # 100 kB
    with fileio.open_write(str(tmp_path / "small.gz"), True, size_hint=len(payload)) as fh:
        fh.write(payload)
    assert started == []
    assert gzip.decompress((tmp_path / "small.gz").read_bytes()) == payload
    big = payload * (fileio.SMALL_OUTPUT // len(payload) + 2)  # above the threshold: threads as before
    with fileio.open_write(str(tmp_path / "big.gz"), True, size_hint=len(big)) as fh:
        fh.write(big)
    assert started
    assert gzip.decompress((tmp_path / "big.gz").read_bytes()) == big
