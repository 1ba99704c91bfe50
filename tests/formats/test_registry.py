"""The registry holds what each format knows, once: extensions, companion files, storable dtypes
and declared capabilities. These tests read the facts from it and check that no other module of
medconv repeats them."""
import ast
import importlib.util
import os
import pathlib

import numpy as np
import pytest

import medconv
from helpers import make_volume, write_read
from medconv import formats
from medconv.formats import BY_NAME, CAPABILITIES, FORMATS

PACKAGE = pathlib.Path(medconv.__file__).parent
REGISTRY = PACKAGE / "formats" / "_registry.py"
#: the backend function each capability promises
PROMISES = {"stream": "stream_slabs", "series": "info_records", "scrub": "scrub", "detached": "point_to"}
WRITABLE = [f for f in FORMATS if f.can_write and importlib.util.find_spec(f.module) is not None]


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        yield path, module, ast.parse(path.read_text(encoding="utf-8"))


def _strings(tree):
    """The string constants of a module that are not docstrings (help texts and messages included)."""
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node


def test_every_default_extension_is_one_the_format_writes():
    for f in FORMATS:
        if f.default_extension == "/":  # a folder of files
            assert f.name == "dicom"
            continue
        assert f.default_extension in f.extensions, f.name
        assert set(f.written) <= set(f.extensions), f.name
        assert f.written == () or f.default_extension in f.written or f.name == "nifti2", f.name


def test_the_cli_tables_come_from_the_registry():
    assert {f.name: f.default_extension for f in FORMATS} == formats.DEFAULT_EXTENSIONS
    for token, (name, ext) in formats.OUTPUT_EXTENSIONS.items():
        assert "." + token in BY_NAME[name].written
        assert ext == ("/" if BY_NAME[name].default_extension == "/" else "." + token)
    assert formats.output_choice("nifti1") == ("nifti1", ".nii.gz")
    assert formats.output_choice("dcm") == ("dicom", "/")
    assert tuple(f.name for f in FORMATS if not f.geometry) == formats.RASTER


def test_declared_capabilities_are_what_the_backends_offer():
    for f in FORMATS:
        assert set(f.capabilities) <= set(CAPABILITIES), f.name
        if importlib.util.find_spec(f.module) is None:
            continue
        module = formats.backend(f.name)
        for capability, function in PROMISES.items():
            assert hasattr(module, function) == f.can(capability), (f.name, capability)
        assert not f.pairs or hasattr(module, "files"), f.name


def test_scrubbing_goes_through_the_registry(tmp_path):
    """formats.scrub runs the backend of a format that declares "scrub" and refuses any other;
    formats.point_to rewrites only a header that names its detached data file."""
    from medconv.errors import UnsupportedFormat

    assert {f.name for f in FORMATS if not f.can("scrub")} == {"dicom"}
    with pytest.raises(UnsupportedFormat, match="no scrubber for dicom"):
        formats.scrub("dicom", b"", "x.dcm")
    medconv.write(make_volume(shape=(3, 2, 2)), str(tmp_path / "v.mhd"))
    header = (tmp_path / "v.mhd").read_bytes()
    new, removed, companions = formats.scrub("metaimage", b"Comment = Doe\n" + header, str(tmp_path / "v.mhd"))
    assert b"Doe" not in new and "comment" in removed
    assert companions == [(str(tmp_path / "v.raw"), (tmp_path / "v.raw").read_bytes())]
    assert formats.point_to("metaimage", new, "x.raw").endswith(b"ElementDataFile = x.raw\n")
    assert formats.point_to("nifti1", header, "x.img") == header


def test_files_of_a_pair_and_of_detached_headers(tmp_path):
    vol = make_volume((4, 3, 2), "int16")
    assert formats.files(str(tmp_path / "a.hdr")) == [str(tmp_path / "a.hdr"), str(tmp_path / "a.img")]
    assert formats.files(str(tmp_path / "a.img")) == [str(tmp_path / "a.img"), str(tmp_path / "a.hdr")]
    assert formats.files(str(tmp_path / "a.img.gz")) == [str(tmp_path / "a.img.gz"), str(tmp_path / "a.hdr.gz")]
    # not written yet: the data file a write names by default
    assert formats.files(str(tmp_path / "m.mhd")) == [str(tmp_path / "m.mhd"), str(tmp_path / "m.raw")]
    assert formats.files(str(tmp_path / "n.nhdr")) == [str(tmp_path / "n.nhdr"), str(tmp_path / "n.raw")]
    # written: the data file its header names
    for name in ("w.mhd", "v.nhdr", "p.hdr"):
        written = medconv.write(vol, str(tmp_path / name))
        assert sorted(map(os.path.abspath, formats.files(str(tmp_path / name)))) == sorted(written), name
    # one file, or an image whose data is inside its header
    for name in ("x.nii.gz", "x.mha", "x.nrrd", "x.mgz", "x.png", "dir/"):
        assert formats.files(str(tmp_path / name)) == [str(tmp_path / name)]
    # the format read from a file asks its backend, which also reads an attached header
    medconv.write(vol, str(tmp_path / "local.mha"))
    assert formats.files(str(tmp_path / "local.mha"), "metaimage") == [str(tmp_path / "local.mha")]


def test_header_files_are_the_data_files_of_headers(tmp_path):
    vol = make_volume((4, 3, 2), "int16")
    names = []
    for name in ("p.hdr", "m.mhd", "n.nhdr", "s.nii"):
        names += medconv.write(vol, str(tmp_path / name))
    assert formats.header_files(names) == {str(tmp_path / n) for n in ("p.img", "m.raw", "n.raw")}


#: (format, extension, dtype): every dtype a format stores, under every extension it writes (DICOM: a folder)
CASES = [(f, ext, dtype) for f in WRITABLE for dtype in f.dtypes
         for ext in (f.written if f.written and f.default_extension != "/" else (f.default_extension,))]
#: formats whose headers hold the geometry as decimal text of doubles: kept to the last digit
EXACT_GEOMETRY = ("metaimage", "nrrd")


@pytest.mark.parametrize("fmt,ext,dtype", CASES, ids=[f"{f.name}-{e}-{d}" for f, e, d in CASES])
def test_each_storable_dtype_round_trips(tmp_path, fmt, ext, dtype):
    shape = (5, 4) if 3 not in fmt.ndims else (5, 4, 3)
    kind = "complex" if np.dtype(dtype).kind == "c" else "scalar"
    vol = make_volume(shape, dtype, value_kind=kind, seed=3)
    if not fmt.geometry:  # the rasters' convention
        vol = vol.replace(affine=np.diag([-1.0, -1.0, 1.0, 1.0]))
    elif fmt.name == "analyze":  # no rotation, whole-voxel origin
        vol = vol.replace(affine=np.diag([-1.5, 2.0, 2.5, 1.0]))
    back, written = write_read(vol, ext, tmp_path, to=fmt.name)
    assert back.format == fmt.name or fmt.name == "nifti2" and back.format == "nifti1", back.format
    if fmt.default_extension != "/":  # the files of one image are the files written
        assert len(written) == len(formats.files(str(tmp_path / ("v" + ext)))), written
    if fmt.name == "jpeg":  # lossy
        assert back.dtype == vol.dtype and back.shape == vol.shape
        return
    if fmt.geometry and back.orientation != vol.orientation:  # DICOM reads its slices along their normal
        back = back.reoriented(vol.orientation)
    np.testing.assert_array_equal(back.real() if back.scaling else back.array, vol.array)
    # every value is kept; DICOM stores 8-bit signed data in 16 bits
    assert back.dtype == vol.dtype or (fmt.name == "dicom" and dtype == "int8"), back.dtype
    if fmt.geometry:
        assert back.orientation_known or fmt.name == "analyze"
        atol = 1e-9 if fmt.name in EXACT_GEOMETRY else 1e-4
        np.testing.assert_allclose(back.affine, vol.affine, atol=atol)


def test_format_facts_are_defined_only_in_the_registry():
    """An extension literal belongs to the registry or to the backend of a format that has it; a
    list of dtypes or a table of format names to extensions, to the registry alone."""
    owners = {}
    for f in FORMATS:
        for ext in f.extensions + f.written + sum(f.pairs, ()):
            owners.setdefault(ext, set()).add(f.module)
    dtypes = set(formats.ALL_DTYPES)
    names = set(BY_NAME)
    found = []
    for path, module, tree in _sources():
        if path == REGISTRY:
            continue
        for node in _strings(tree):
            mods = owners.get(node.value.lower())
            if mods and not any(module == m or module.startswith(m + ".") for m in mods):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: extension {node.value!r}")
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
                if len(dtypes.intersection(values)) >= 6:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: a list of dtypes")
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if len(keys & names) >= 2 and any(isinstance(v, ast.Constant) and str(v.value).startswith(".")
                                                  for v in node.values):
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: a table of format extensions")
    assert not found, "\n".join(found)
