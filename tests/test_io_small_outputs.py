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


def test_medium_output_is_one_gzip_member_deflated_in_blocks(tmp_path):
    """Between the two thresholds: blocks deflated on threads, one gzip member any reader inflates."""
    import zlib

    rng = np.random.default_rng(0)
    payload = rng.integers(0, 50, 3 * fileio.TINY_OUTPUT // 2, dtype=np.int16).tobytes()  # 3 MiB
    before = fileio._state["level"]
    try:
        for level in (0, 1, 3, 6):
            fileio.set_compression(level=level)
            out = tmp_path / f"medium{level}.gz"
            with fileio.open_write(str(out), True, size_hint=len(payload)) as fh:
                assert isinstance(fh, fileio.BlockGzip)
                fh.write(payload[:352])
                fh.write(memoryview(payload)[352:])
            raw = out.read_bytes()
            dec = zlib.decompressobj(31)
            assert dec.decompress(raw) == payload and dec.eof and dec.unused_data == b""
            assert gzip.decompress(raw) == payload
            if level:
                assert len(raw) < len(payload) // 2
    finally:
        fileio.set_compression(level=before)


def test_medium_output_abandoned_part_way_is_not_deflated(tmp_path):
    payload = b"\0" * (2 * fileio.TINY_OUTPUT)
    try:
        with fileio.open_write(str(tmp_path / "x.gz"), True, size_hint=len(payload)) as fh:
            fh.write(payload)
            raise RuntimeError("stopped")
    except RuntimeError:
        pass
    assert fh.closed and (tmp_path / "x.gz").stat().st_size < 100
