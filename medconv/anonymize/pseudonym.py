"""Keyed pseudonyms: the same input and key always give the same output."""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets

ENV_KEY = "MEDCONV_ANON_KEY"
# Names built from digests use no digits, so they can never look like a date to --check.
_LETTERS = str.maketrans("0123456789abcdef", "bcdfghjkmnpqrstv")


class Pseudonymizer:
    """HMAC-SHA256 pseudonyms for UIDs and patient identifiers; records a mapping."""

    def __init__(self, key: str | None = None, raw_key: bytes | None = None):
        self.generated = False
        self.mapping: dict = {}
        if raw_key is not None:  # a worker process sharing its parent's key
            self._key = raw_key
            return
        if not key:
            key = os.environ.get(ENV_KEY) or None
        if not key:
            key = secrets.token_hex(32)
            self.generated = True
        self._key = key.encode("utf-8")

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self._key, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()

    # Every pseudonym carries a keyed tag of its own digits, so a value this key made is
    # recognised and kept: anonymising an anonymised file again with the same key changes no
    # UID and no patient pseudonym (idempotence). Another key's values are replaced as usual.

    def _tag(self, kind: str, body: bytes, n: int) -> bytes:
        return hmac.new(self._key, kind.encode() + b"\x00" + body, hashlib.sha256).digest()[:n]

    def _is_own_uid(self, value: str) -> bool:
        digits = value[5:]
        if not value.startswith("2.25.") or not digits.isdigit() or len(digits) > 39:
            return False
        n = int(digits)
        if n >= 1 << 128:
            return False
        raw = n.to_bytes(16, "big")
        return hmac.compare_digest(raw[12:], self._tag("uid-tag", raw[:12], 4))

    def uid(self, value: str) -> str:
        """A 2.25 UID (a 128-bit integer, at most 44 characters) derived from the original UID:
        96 bits of keyed digest and a 32-bit keyed tag of those bits."""
        value = str(value).strip().rstrip("\x00")
        made = self.mapping.get("uid", {}).get(value)
        if made is not None:
            return made  # a study's, series' or frame of reference's UID, met again in the next file
        if not value or self._is_own_uid(value):
            return value
        body = self._digest("uid", value)[:12]
        new = "2.25." + str(int.from_bytes(body + self._tag("uid-tag", body, 4), "big"))
        self.mapping.setdefault("uid", {})[value] = new
        return new

    def patient(self, patient_id: str) -> str:
        """A patient pseudonym such as ANON-QKTBMDCHSVGFBCDF (the same for the same PatientID):
        12 letters of keyed digest and 4 of keyed tag."""
        value = str(patient_id).strip()
        if len(value) == 21 and value.startswith("ANON-"):
            body = value[5:17].encode()
            if hmac.compare_digest(value[17:].encode(), self._letters(self._tag("patient-tag", body, 2))):
                return value
        body = self._letters(self._digest("patient", value)[:6])
        new = "ANON-" + (body + self._letters(self._tag("patient-tag", body, 2))).decode()
        self.mapping.setdefault("patient", {})[str(patient_id)] = new
        return new

    @staticmethod
    def _letters(raw: bytes) -> bytes:
        return raw.hex().translate(_LETTERS).upper().encode()

    def short(self, kind: str, value: str, n: int = 12) -> str:
        """A short opaque name for a folder (study or series)."""
        return self._digest(kind, str(value)).hex()[:n].translate(_LETTERS)


def write_mapping(path: str, mapping: dict, force: bool = False) -> None:
    """Write the original-to-pseudonym table as JSON, readable by the owner only."""
    import json

    from ..errors import OutputError

    if os.path.lexists(path) and not force:
        raise OutputError("destination exists (use --force to replace it)", path)
    from .. import fileio

    parent = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(parent, f".medconv-{secrets.token_hex(6)}.part")
    text = json.dumps(mapping, indent=1, sort_keys=True)
    try:
        with fileio.uninterrupted:  # created and recorded as one step (removed if the run is stopped)
            # Created 0600 from the start so the table is never readable by others, even briefly.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            fileio.LIVE_TEMPS.add(tmp)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        with fileio.uninterrupted:
            os.replace(tmp, path)
            fileio.LIVE_TEMPS.discard(tmp)
    except OSError as exc:
        fileio.discard_temp(tmp)
        raise OutputError(f"cannot write the mapping ({exc.strerror})", path) from None
