"""medconv view: orientation letters, windows, overlays, montages, terminal output, errors."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import medconv
from helpers import ROOT, assert_clean_error, oblique_affine, run, run_pty
from medconv import view as viewlib
from medconv.volume import Volume

MARK = 1000


def _las_corner(affine, shape):
    """The corner voxel furthest to the left, anterior and superior (max of -x + y + z)."""
    import itertools

    best, where = None, None
    for ijk in itertools.product(*[(0, n - 1) for n in shape]):
        x, y, z = (np.asarray(affine) @ np.array([*ijk, 1.0]))[:3]
        score = -x + y + z
        if best is None or score > best:
            best, where = score, ijk
    return where


def _marked(affine, shape=(12, 14, 10)):
    data = np.zeros(shape, np.int16)
    ijk = _las_corner(affine, shape)
    data[ijk] = MARK
    return Volume(data=data, affine=affine), ijk


def _bright_centre(image, box):
    arr = np.asarray(image)[box[1]:box[3], box[0]:box[2]].astype(int)
    ys, xs = np.nonzero(arr.sum(axis=-1) >= 3 * 250)
    assert xs.size, "the marker is not drawn in this panel"
    return xs.mean() / (box[2] - box[0]), ys.mean() / (box[3] - box[1])


def _check_letters(picture):
    """In every panel the marker lies on the side labelled L, A or S."""
    assert [p.name for p in picture.panels] == ["sagittal", "coronal", "axial"]
    for panel in picture.panels:
        fx, fy = _bright_centre(picture.image, panel.box)
        horizontal = {panel.left: fx, panel.right: 1 - fx}
        vertical = {panel.top: fy, panel.bottom: 1 - fy}
        near_h = min(horizontal, key=horizontal.get)
        near_v = min(vertical, key=vertical.get)
        assert near_h in "LAS" and near_v in "LAS", (panel, fx, fy)
        assert {panel.left, panel.right} in ({"L", "R"}, {"A", "P"}, {"S", "I"})


SAGITTAL = np.array([[0, 0, -1.0, 30], [-0.9, 0, 0, 40], [0, -0.8, 0, 50], [0, 0, 0, 1]])  # PIL, sagittal slices
AFFINES = {
    "RAS": np.diag([0.9, 1.1, 2.0, 1.0]),
    "LPS": np.diag([-0.9, -1.1, 2.0, 1.0]),
    "oblique": oblique_affine(),
    "sagittal": SAGITTAL,
}


@pytest.mark.parametrize("name", list(AFFINES))
@pytest.mark.parametrize("neurological", [False, True])
def test_marker_in_left_anterior_superior_corner_is_on_the_sides_labelled_l_a_s(tmp_path, name, neurological):
    volume, ijk = _marked(AFFINES[name])
    path = tmp_path / f"{name}.nii.gz"
    medconv.write(volume, path)
    picture = viewlib.view(str(path), voxel=ijk, window=(500, 1000), neurological=neurological)
    _check_letters(picture)
    axial = picture.panels[2]
    assert (axial.left, axial.right) == (("L", "R") if neurological else ("R", "L"))
    assert (axial.top, axial.bottom) == ("A", "P")


def test_lps_metaimage_and_at_world_point(tmp_path):
    volume, ijk = _marked(AFFINES["LPS"])
    path = tmp_path / "lps.mha"
    medconv.write(volume, path)
    world = (AFFINES["LPS"] @ np.array([*ijk, 1.0]))[:3]
    picture = viewlib.view(str(path), at=tuple(world), window=(500, 1000))
    _check_letters(picture)


def test_cli_png_is_written_and_letters_drawn(tmp_path):
    volume, ijk = _marked(AFFINES["sagittal"])
    src = tmp_path / "sag.nii.gz"
    medconv.write(volume, src)
    out = tmp_path / "sag.png"
    r = run("view", src, "-o", out, "--voxel", ",".join(map(str, ijk)), "--window", "500,1000")
    assert r.code == 0, r.err
    assert r.out == ""
    from PIL import Image

    img = np.asarray(Image.open(out).convert("RGB"))
    letter = np.all(img == viewlib.LETTER_COLOUR, axis=-1)
    assert letter.sum() > 50  # the twelve letters are drawn in their colour
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".medconv-")]


def test_window_auto_uses_voi_then_percentiles():
    data = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    vol = Volume(data=data, affine=np.eye(4))
    lo, hi = viewlib.auto_window(vol, [data[:, :, 5]])
    assert lo == pytest.approx(np.percentile(data[:, :, 5], 0.5))
    assert hi == pytest.approx(np.percentile(data[:, :, 5], 99.5))
    vol.metadata.update(window_center=40.0, window_width=400.0)
    assert viewlib.auto_window(vol, [data]) == pytest.approx((-160.0, 239.0))


def test_window_option_maps_centre_to_mid_grey():
    data = np.full((6, 6, 6), 40, np.int16)
    picture = viewlib.render(Volume(data=data, affine=np.eye(4)), window=(40.5, 101))
    p = picture.panels[2]
    mid = np.asarray(picture.image)[(p.box[1] + p.box[3]) // 2, (p.box[0] + p.box[2]) // 2]
    assert abs(int(mid[0]) - 127) <= 2 and mid[0] == mid[1] == mid[2]


def test_cmap_and_bad_options(tmp_path):
    volume, _ = _marked(np.eye(4))
    src = tmp_path / "a.nii.gz"
    medconv.write(volume, src)
    assert viewlib.cmap_table("hot")[-1].tolist() == [255, 255, 255]
    for args, needle in ((["--cmap", "rainbow"], "colour map"), (["--window", "1"], "--window"),
                         (["--voxel", "1,2"], "--voxel"), (["--voxel", "99,0,0"], "outside"),
                         (["--at", "1,2,3", "--voxel", "1,1,1"], "cannot be combined"),
                         (["--volume", "3"], "--volume 3")):
        r = run("view", src, "-o", tmp_path / "x.png", *args)
        assert_clean_error(r, 2, needle)
        assert not (tmp_path / "x.png").exists()


def test_overlay_colours_match_labels_and_legend_names(tmp_path):
    base = np.zeros((20, 20, 5), np.int16)
    labels = np.zeros((20, 20, 5), np.uint8)
    labels[2:8, 2:8, :] = 1
    labels[12:18, 12:18, :] = 2
    labels[2:8, 12:18, :] = 7
    aff = np.eye(4)
    medconv.write(Volume(data=base, affine=aff), tmp_path / "img.nii.gz")
    # a Slicer-style segmentation NRRD: the names are in the file
    raw = labels.tobytes(order="F")
    header = ("NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\nsizes: 20 20 5\n"
              "space directions: (-1,0,0) (0,-1,0) (0,0,1)\nspace origin: (0,0,0)\nencoding: raw\n"
              "Segment0_Name:=liver\nSegment0_LabelValue:=1\nSegment1_Name:=spleen\nSegment1_LabelValue:=2\n\n")
    (tmp_path / "seg.nrrd").write_bytes(header.encode() + raw)
    picture = viewlib.view(str(tmp_path / "img.nii.gz"), overlay=str(tmp_path / "seg.nrrd"))
    assert [(v, n) for v, n, _ in picture.labels] == [(1, "liver"), (2, "spleen"), (7, None)]
    axial = picture.panels[2]
    img = np.asarray(picture.image)
    x0, y0, x1, y1 = axial.box
    seen = {tuple(c) for c in img[y0:y1, x0:x1].reshape(-1, 3).tolist()}
    for value in (1, 2, 7):
        assert viewlib.blend((0, 0, 0), viewlib.label_colour(value)) in seen
    # label 1 sits at low i, low j: in RAS that is left-posterior, so bottom-right radiologically
    fx, fy = 1 - 5.5 / 20, 1 - 5.5 / 20
    corner = tuple(int(v) for v in img[int(y0 + fy * (y1 - y0)), int(x0 + fx * (x1 - x0))])
    assert corner == viewlib.blend((0, 0, 0), viewlib.label_colour(1))
    assert len({viewlib.label_colour(v) for v in range(1, 40)}) == 39


def test_overlay_on_another_grid_is_refused(tmp_path):
    medconv.write(Volume(data=np.zeros((6, 6, 6), np.int16), affine=np.eye(4)), tmp_path / "a.nii.gz")
    medconv.write(Volume(data=np.zeros((6, 6, 5), np.uint8), affine=np.eye(4)), tmp_path / "s.nii.gz")
    r = run("view", tmp_path / "a.nii.gz", "--overlay", tmp_path / "s.nii.gz", "-o", tmp_path / "o.png")
    assert_clean_error(r, 2, "--overlay must share")


def test_montage_slices_evenly_spaced_and_ordered(tmp_path):
    data = np.zeros((8, 8, 20), np.int16)
    for k in range(20):
        data[:, :, k] = k
    vol = Volume(data=data, affine=np.diag([1.0, 1.0, -1.0, 1.0]))  # k runs superior to inferior
    picture = viewlib.render(vol, montage=4, axis="axial", window=(10, 21))
    idx = [p.index for p in picture.panels]
    assert sorted(idx) == [2, 7, 12, 17]
    assert idx == [17, 12, 7, 2]  # inferior first, whatever the stored order
    assert all(p.name == "axial" for p in picture.panels)
    sag = viewlib.render(vol, montage=3, axis="sagittal", window=(10, 21))
    assert [p.name for p in sag.panels] == ["sagittal"] * 3


def test_4d_volume_choice_and_rgb(tmp_path):
    data = np.zeros((6, 6, 6, 3), np.int16)
    data[..., 2] = 100
    vol = Volume(data=data, affine=np.eye(4), time_step=2.0)
    dark = viewlib.render(vol, t=0, window=(50, 100))
    bright = viewlib.render(vol, t=2, window=(50, 100))
    c = dark.panels[2].box
    centre = ((c[1] + c[3]) // 2, (c[0] + c[2]) // 2)
    assert np.asarray(dark.image)[centre].tolist() == [0, 0, 0]
    assert np.asarray(bright.image)[centre].tolist() == [255, 255, 255]
    rgb = np.zeros((6, 6, 6, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[..., 2] = 30
    pic = viewlib.render(Volume(data=rgb, affine=np.eye(4), value_kind="rgb"))
    assert np.asarray(pic.image)[centre].tolist() == [200, 0, 30]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_half_blocks_fit_the_columns():
    vol, _ = _marked(np.eye(4))
    picture = viewlib.render(vol)
    for columns in (20, 57, 80):
        text = viewlib.terminal_text(picture.image, columns, 200)
        lines = text.rstrip("\n").split("\n")
        widths = {len(_ANSI.sub("", line)) for line in lines}
        assert max(widths) <= columns and max(widths) >= columns - 1
        assert set(_ANSI.sub("", text)) <= {"\u2580", "\n"}
        assert "38;2;" in text and "48;2;" in text  # 24-bit colour
    short = viewlib.terminal_text(picture.image, 200, 10)
    assert len(short.rstrip("\n").split("\n")) <= 10


def test_terminal_protocols_announced():
    assert viewlib.terminal_protocol({"TERM": "xterm-kitty"}) == "kitty"
    assert viewlib.terminal_protocol({"TERM_PROGRAM": "iTerm.app"}) == "iterm2"
    assert viewlib.terminal_protocol({"TERM": "xterm-256color"}) == "blocks"
    from PIL import Image

    img = Image.new("RGB", (300, 200), (10, 20, 30))
    k = viewlib.terminal_text(img, 40, protocol="kitty")
    assert k.startswith("\x1b_Ga=T,f=100,") and "c=40" in k and k.rstrip().endswith("\x1b\\")
    it = viewlib.terminal_text(img, 40, protocol="iterm2")
    assert it.startswith("\x1b]1337;File=inline=1;") and "width=40" in it


def test_terminal_output_on_a_pty_fits_columns(tmp_path):

    vol, _ = _marked(np.eye(4))
    medconv.write(vol, tmp_path / "a.nii.gz")
    env = dict(os.environ, COLUMNS="50", LINES="40", TERM="xterm-256color")
    for key in ("KITTY_WINDOW_ID", "TERM_PROGRAM", "LC_TERMINAL", "MEDCONV_TERMINAL_GRAPHICS"):
        env.pop(key, None)
    code, shown, err = run_pty(["view", tmp_path / "a.nii.gz"], tty="stdout", env=env)
    assert code == 0, err
    text = _ANSI.sub("", shown).replace("\r", "")
    lines = [line for line in text.split("\n") if line]
    assert lines and max(len(line) for line in lines) <= 50
    assert len(lines) <= 40


def test_not_a_terminal_without_output_is_a_usage_error(tmp_path):
    medconv.write(Volume(data=np.zeros((4, 4, 4), np.int16), affine=np.eye(4)), tmp_path / "a.nii.gz")
    r = run("view", tmp_path / "a.nii.gz")
    assert_clean_error(r, 2, "not a terminal")
    assert r.out == ""


def test_unreadable_input_and_existing_output(tmp_path):
    r = run("view", tmp_path / "missing.nii.gz", "-o", tmp_path / "o.png")
    assert_clean_error(r, 3, "no such file")
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    r = run("view", bad, "-o", tmp_path / "o.png")
    assert_clean_error(r, 3)
    medconv.write(Volume(data=np.zeros((4, 4, 4), np.int16), affine=np.eye(4)), tmp_path / "a.nii.gz")
    (tmp_path / "o.png").write_bytes(b"old")
    r = run("view", tmp_path / "a.nii.gz", "-o", tmp_path / "o.png")
    assert_clean_error(r, 4, "exists")
    assert (tmp_path / "o.png").read_bytes() == b"old"
    r = run("view", tmp_path / "a.nii.gz", "-o", tmp_path / "o.png", "--force")
    assert r.code == 0 and (tmp_path / "o.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = run("view", tmp_path / "a.nii.gz", "-o", tmp_path / "o.jpg")
    assert_clean_error(r, 2, "PNG")


def test_no_plotting_library_is_imported(tmp_path):
    medconv.write(Volume(data=np.zeros((4, 4, 4), np.int16), affine=np.eye(4)), tmp_path / "a.nii.gz")
    code = ("import sys, medconv.view as v; v.view(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'plotly', 'seaborn')))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.nii.gz")], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_2d_image_shows_its_one_plane(tmp_path):
    from PIL import Image

    arr = (np.arange(48 * 64).reshape(48, 64) % 251).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "g.png")
    picture = viewlib.view(str(tmp_path / "g.png"))
    assert len(picture.panels) == 1
    single = Volume(data=np.zeros((9, 7, 1), np.int16), affine=np.eye(4))
    assert [p.name for p in viewlib.render(single).panels] == ["axial"]


def test_label_names_file_and_cli_overlay(tmp_path):
    base = np.zeros((10, 10, 4), np.int16)
    labels = np.zeros((10, 10, 4), np.uint8)
    labels[1:4, 1:4, :] = 3
    medconv.write(Volume(data=base, affine=np.eye(4)), tmp_path / "img.nii.gz")
    medconv.write(Volume(data=labels, affine=np.eye(4), value_kind="label"), tmp_path / "seg.nii.gz")
    (tmp_path / "names.txt").write_text('3 0 0 255 1 1 1 "Left-Hippocampus"\n')
    picture = viewlib.view(str(tmp_path / "img.nii.gz"), overlay=str(tmp_path / "seg.nii.gz"),
                           label_names_path=str(tmp_path / "names.txt"))
    assert [(v, n) for v, n, _ in picture.labels] == [(3, "Left-Hippocampus")]
    out = tmp_path / "o.png"
    r = run("view", tmp_path / "img.nii.gz", "--overlay", tmp_path / "seg.nii.gz", "--label-names",
            tmp_path / "names.txt", "-o", out)
    assert r.code == 0 and out.exists()
    r = run("view", tmp_path / "img.nii.gz", "--label-names", tmp_path / "names.txt", "-o", tmp_path / "p.png")
    assert_clean_error(r, 2, "--overlay")
