"""medconv view with many inputs: one PNG each and a self-contained index.html, checked in Chromium."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import medconv
from helpers import assert_clean_error, run
from medconv.volume import Volume


def _inputs(tmp_path, n=3):
    paths = []
    for i in range(n):
        data = np.zeros((10 + i, 12, 8), np.int16)
        data[2:8, 3:9, 2:6] = 100 * (i + 1)
        name = tmp_path / f"sub-{i}&<x>.nii.gz" if i == 1 else tmp_path / f"sub-{i}.nii.gz"
        medconv.write(Volume(data=data, affine=np.diag([1.0, 1.2, 2.5, 1.0])), name)
        paths.append(str(name))
    return paths


def test_batch_writes_one_png_each_and_an_index_in_input_order(tmp_path):
    paths = _inputs(tmp_path)
    paths = [paths[2], paths[0], paths[1]]  # input order, not name order
    out = tmp_path / "qc"
    r = run("view", *paths, "-o", f"{out}/", "-j", "2")
    assert r.code == 0, r.err
    assert r.out == ""
    pngs = sorted(os.listdir(out))
    assert pngs == sorted(["index.html", "sub-0.png", "sub-1__x_.png", "sub-2.png"])
    page = (out / "index.html").read_text()
    rows = re.findall(r'<tr class="qc-row" data-input="([^"]*)"', page)
    assert [html.unescape(r) for r in rows] == paths
    assert "http://" not in page and "https://" not in page  # nothing from the network
    assert page.count('src="data:image/png;base64,') == 3
    assert "12 x 12 x 8" in page and "1 x 1.2 x 2.5" in page and "RAS" in page


def test_batch_failure_keeps_going_and_lists_it(tmp_path):
    paths = _inputs(tmp_path, 2)
    out = tmp_path / "qc"
    r = run("view", paths[0], tmp_path / "missing.nii.gz", paths[1], "-o", out, "-k")
    assert r.code == 5
    assert "missing.nii.gz" in r.err and "Traceback" not in r.err
    page = (out / "index.html").read_text()
    assert page.count('class="qc-row"') == 3 and "no such file" in page
    r = run("view", paths[0], tmp_path / "missing.nii.gz", "-o", tmp_path / "qc2")
    assert_clean_error(r, 3, "missing.nii.gz")
    assert not (tmp_path / "qc2" / "index.html").exists()


def test_batch_refuses_to_replace_without_force(tmp_path):
    paths = _inputs(tmp_path, 2)
    out = tmp_path / "qc"
    assert run("view", *paths, "-o", out).code == 0
    before = (out / "index.html").read_bytes()
    r = run("view", *paths, "-o", out)
    assert_clean_error(r, 4, "exists")
    assert (out / "index.html").read_bytes() == before
    assert run("view", *paths, "-o", out, "--force").code == 0
    r = run("view", *paths)
    assert_clean_error(r, 2, "-o DIR")


CHECK = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('img'));
  var rows = document.querySelectorAll('tr.qc-row');
  var out = {images: imgs.map(function (i) { return [i.complete, i.naturalWidth, i.naturalHeight]; }),
             rows: Array.prototype.map.call(rows, function (r) { return r.getAttribute('data-input'); })};
  var pre = document.createElement('pre');
  pre.id = 'medconv-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_index_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (Debian package 'chromium'): the QC page is not checked in a browser")
    paths = _inputs(tmp_path, 3)
    out = tmp_path / "qc"
    assert run("view", *paths, "-o", out).code == 0
    # the page as written, plus a script that records what the browser rendered
    page = (out / "index.html").read_text()
    check = out / "check.html"
    check.write_text(page.replace("</body>", CHECK + "</body>"))
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=5000", "--dump-dom", check.as_uri()],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="medconv-check">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    result = json.loads(html.unescape(found.group(1)))
    assert result["rows"] == paths
    assert len(result["images"]) == 3
    assert all(complete and w > 0 and h > 0 for complete, w, h in result["images"]), result


def test_reading_warnings_are_in_the_row_and_on_stderr(tmp_path):
    import nibabel as nib

    data = np.zeros((6, 6, 6), np.int16)
    img = nib.Nifti1Image(data, np.diag([1.0, 1.0, 1.0, 1.0]))
    img.set_qform(np.diag([2.0, 2.0, 2.0, 1.0]), code=1)
    img.set_sform(np.diag([1.0, 1.0, 1.0, 1.0]), code=1)
    nib.save(img, tmp_path / "odd.nii")
    plain = _inputs(tmp_path, 1)[0]
    out = tmp_path / "qc"
    r = run("view", plain, tmp_path / "odd.nii", "-o", out)
    assert r.code == 0, r.err
    assert "qform and sform differ" in r.err
    page = (out / "index.html").read_text()
    rows = page.split('<tr class="qc-row"')[1:]
    assert "qform and sform differ" in rows[1] and "qform and sform differ" not in rows[0]
