"""A mutation fuzzer over every format and every command, deterministic for a seed.

Seeds: files medconv writes in every format it writes (detached and compressed forms included),
hostile-but-valid DICOM (deflated, gzip-compressed, nested sequences, odd character sets), and
real files nobody here wrote: nibabel's test data and pydicom's (and pydicom-data's) test files.
Each call copies one seed set, mutates one of its files (bit flips, absurd 4-byte values, cuts,
insertions, and text-header edits: huge or negative sizes, hostile data file names, LIST and
numbered patterns), and runs one command on it in a forked child with its address space capped
(RLIMIT_AS, like `ulimit -v`) and a time limit.

The contract of every call: exit 0, 1 (anonymize --check found something), 3, 4 or 5; stderr
never holds a traceback nor an internal error, a failure is one `medconv: error:` line of bounded
length; no hang; no memory beyond the cap. Figures: calls, exit codes, tracebacks, exit 70s,
hangs, peak memory (the largest resident set of one call, the forked parent's share included),
per command and format.

    python tests/fuzz/campaign.py --seed 1 --calls 10000          # `make fuzz SEED=1`
    python tests/fuzz/campaign.py --seed 1 --budget 60            # a minute
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)

#: address space a call may use beyond what the parent already maps
MEMORY_CAP = 1 << 30
#: seconds a call may take before it counts as a hang
TIME_LIMIT = 30
#: longest error line accepted
MAX_ERROR_LINE = 2100
#: stdout read back (a longer JSON document is not checked)
MAX_OUTPUT = 64 << 20
#: largest real file taken as a seed
MAX_SEED_BYTES = 2 << 20

COMMANDS = [
    ["info"], ["info", "--json"], ["header"], ["header", "--json"], ["header", "--get", "PatientName"],
    ["stats"], ["stats", "--no-percentiles"], ["convert", "{out}/o.nii"], ["convert", "{out}/o.nrrd"],
    ["convert", "{out}/o.mha"], ["anonymize", "-o", "{out}/anon"], ["anonymize", "--check"],
    ["anonymize", "--dry-run"],
]
ABSURD = [b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\x7f\xff\xff",
          b"\x00\x00\xc0\x7f", b"\x00\x00\x80\x7f"]
TEXT_EDITS = [b"999999999", b"-1", b"0", b"1e308", b"nan", b"/etc/passwd", b"../../secret.raw", b"LIST",
              b"%999999999d 1 2 1", b"x%d 1 99999999 1", b"\x1b]0;x\x07", b"\xe2\x80\xae", b"[/bold]"]


# -- seeds ------------------------------------------------------------------------------------
def _generated(root: str) -> list:
    """(name, format, main file, [files]) written by medconv and the hostile generators."""
    import numpy as np
    from security import hostile

    import medconv
    from helpers import make_volume
    from medconv.volume import Volume

    out = []
    vol = make_volume((6, 5, 4), "int16", scaling=(0.5, -3.0), seed=7)
    axes = make_volume((6, 5, 4), "int16", affine=np.diag([0.75, 0.8, 2.5, 1.0]), seed=8)
    forms = [(".nii", "nifti1", vol, {}), (".nii.gz", "nifti1", vol, {}), ("2.nii", "nifti2", vol, {}),
             (".hdr", "analyze", axes, {}), (".mha", "metaimage", vol, {}), (".mhd", "metaimage", vol, {}),
             ("z.mhd", "metaimage", vol, {"compress": True}), (".nrrd", "nrrd", vol, {}),
             (".nhdr", "nrrd", vol, {}), ("g.nhdr", "nrrd", vol, {"encoding": "gzip"}),
             (".mnc", "minc", axes, {}), (".mgh", "mgh", vol, {}), (".mgz", "mgh", vol, {})]
    for suffix, fmt, volume, options in forms:
        d = os.path.join(root, f"gen-{fmt}-{suffix.strip('.')}")
        os.makedirs(d)
        path = os.path.join(d, "seed" + suffix)
        files = medconv.write(volume, path, to=fmt, **options)
        out.append((f"gen{suffix}", fmt, path, files))
    for fmt in ("png", "tiff", "bmp", "jpeg"):
        d = os.path.join(root, f"gen-{fmt}")
        os.makedirs(d)
        ext = {"jpeg": ".jpg", "tiff": ".tif"}.get(fmt, "." + fmt)
        path = os.path.join(d, "seed" + ext)
        data = (np.arange(30, dtype=np.uint8).reshape(6, 5) * 7)
        files = medconv.write(Volume(data=data, affine=np.eye(4)), path, to=fmt)
        out.append((f"gen-{fmt}", fmt, path, files))
    dicoms = {
        "plain": hostile.dicom(),
        "deflated": hostile.dicom(hostile.deflate_bomb(0, hostile.dataset()), ts=hostile.DEFLATED),
        "nested": hostile.dicom(hostile.dataset(extra=hostile.nested_sequences(8))),
        "nested-defined": hostile.dicom(hostile.dataset(extra=hostile.nested_sequences(8, True))),
        "utf8": hostile.dicom(charset="ISO_IR 192", text="Ünïcødé^Tëst".encode(), description="Çafé".encode()),
    }
    for name, blob in dicoms.items():
        d = os.path.join(root, f"gen-dicom-{name}")
        os.makedirs(d)
        path = os.path.join(d, "seed.dcm")
        with open(path, "wb") as fh:
            fh.write(blob)
        out.append((f"gen-dicom-{name}", "dicom", path, [path]))
    d = os.path.join(root, "gen-dicom-gz")
    os.makedirs(d)
    path = os.path.join(d, "seed.dcm.gz")
    with open(path, "wb") as fh:
        fh.write(hostile.gzip_bomb(0, hostile.dicom(), valid=True))
    out.append(("gen-dicom-gz", "dicom", path, [path]))
    return out


def _real(root: str, everything: bool) -> list:
    """Real seeds: nibabel's test data and pydicom's / pydicom-data's test files."""
    out = []
    try:
        import nibabel

        base = os.path.join(os.path.dirname(nibabel.__file__), "tests", "data")
        names = sorted(f for f in os.listdir(base)
                       if f.endswith((".nii", ".nii.gz", ".mgz", ".mgh", ".mnc", ".hdr", ".nrrd", ".nhdr")))
    except ImportError:
        base, names = "", []
    if not everything:
        names = [n for n in names if n in ("anatomical.nii", "standard.nii.gz", "example_nifti2.nii.gz", "test.mgz",
                                           "minc1_1_scale.mnc", "minc2_1_scale.mnc", "analyze.hdr")]
    for name in names:
        src = os.path.join(base, name)
        if os.path.getsize(src) > MAX_SEED_BYTES:
            continue
        d = os.path.join(root, "nib-" + name)
        os.makedirs(d)
        files = [shutil.copy(src, d)]
        if name.endswith(".hdr"):
            img = src[:-4] + ".img"
            if os.path.exists(img):
                files.append(shutil.copy(img, d))
            else:
                continue  # a header whose image file nibabel does not ship: not a seed
        fmt = {"mgz": "mgh", "mgh": "mgh", "mnc": "minc", "hdr": "analyze"}.get(name.rsplit(".", 1)[-1], "nifti1")
        out.append(("nib-" + name, fmt, files[0], files))
    dicom_files = []
    try:
        import pydicom

        dicom_files += sorted(glob.glob(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "*.dcm")))
    except ImportError:
        pass
    if everything:
        try:
            import data_store

            dicom_files += sorted(glob.glob(os.path.join(os.path.dirname(data_store.__file__), "**", "*.dcm"),
                                            recursive=True))
        except ImportError:
            pass
    else:
        keep = ("CT_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm", "rtdose.dcm",
                "SC_rgb_rle_2frame.dcm", "JPEG2000.dcm", "image_dfl.dcm", "emri_small.dcm", "MR_small.dcm")
        dicom_files = [f for f in dicom_files if os.path.basename(f) in keep]
    for src in dicom_files:
        if os.path.getsize(src) > MAX_SEED_BYTES:
            continue
        name = "dcm-" + os.path.basename(src)
        if any(n == name for n, *_ in out):
            name += f"-{len(out)}"
        d = os.path.join(root, name)
        os.makedirs(d)
        out.append((name, "dicom", shutil.copy(src, d), [os.path.join(d, os.path.basename(src))]))
    return out


# -- mutation -----------------------------------------------------------------------------------
def _is_text(blob: bytes) -> bool:
    head = blob[:64]
    return head.startswith((b"NRRD", b"ObjectType", b"NDims")) or b"ElementDataFile" in blob[:4096]


def mutate(blob: bytes, rng: random.Random) -> bytes:
    buf = bytearray(blob)
    if buf[:2] == b"\x1f\x8b" and rng.random() < 0.6:  # the header lives inside the stream
        import gzip
        import zlib

        try:
            inner = gzip.decompress(bytes(buf))
        except (OSError, EOFError, zlib.error):
            inner = None
        if inner is not None:
            return gzip.compress(mutate(inner, rng), mtime=0)
    text = _is_text(blob)
    for _ in range(rng.randint(1, 4)):
        n = len(buf)
        head = max(1, min(n, 1024))
        op = rng.random()
        if text and op < 0.45:
            lines = bytes(buf).split(b"\n")
            i = rng.randrange(len(lines))
            key, sep, _ = lines[i].partition(b":" if b":" in lines[i] else b"=")
            if sep:
                lines[i] = key + sep + b" " + rng.choice(TEXT_EDITS)
            buf = bytearray(b"\n".join(lines))
        elif op < 0.55 and n:
            buf[rng.randrange(head)] ^= 1 << rng.randrange(8)
        elif op < 0.7 and n > 4:
            i = rng.randrange(max(1, head - 4))
            buf[i:i + 4] = rng.choice(ABSURD)
        elif op < 0.8 and n:
            del buf[rng.randrange(n):]
        elif op < 0.9:
            i = rng.randrange(n + 1)
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif n:
            buf[rng.randrange(n)] = rng.choice([0, 1, 0x7F, 0x80, 0xFE, 0xFF])
    return bytes(buf)


# -- one call in a forked child -----------------------------------------------------------------
def _vsize() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * resource.getpagesize()


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def call(argv: list, workdir: str) -> dict:
    """Run `medconv ARGV` in a forked child: (exit code, stdout, stderr, seconds, peak RSS bytes)."""
    out_path, err_path = os.path.join(workdir, ".stdout"), os.path.join(workdir, ".stderr")
    cap = _vsize() + MEMORY_CAP
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 70
        try:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            fd_out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            fd_err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd_out, 1)
            os.dup2(fd_err, 2)
            # the streams themselves too: under pytest sys.stdout/sys.stderr are capture objects
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
            sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
            os.chdir(workdir)
            from medconv.cli import main

            try:
                main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 99
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:
                pass
            os._exit(code)
    deadline = start + TIME_LIMIT
    hung = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            hung = True
            break
        time.sleep(0.002)
    code = os.waitstatus_to_exitcode(status)
    with open(out_path, "rb") as fh:
        out = fh.read(MAX_OUTPUT + 1).decode("utf-8", "replace")
    with open(err_path, "rb") as fh:
        err = fh.read(1 << 20).decode("utf-8", "replace")
    return {"code": code, "out": out, "err": err, "seconds": time.monotonic() - start, "hung": hung,
            "maxrss": usage.ru_maxrss * 1024}


def judge(argv: list, result: dict) -> str | None:
    """What is wrong with a call's outcome (None: it kept the contract)."""
    if result["hung"]:
        return "hang"
    code, err = result["code"], result["err"]
    if "Traceback" in err:
        return "traceback"
    if code == 70 or "internal error" in err:
        return "exit 70"
    if code < 0 or code == 99:
        return f"killed ({code})"
    allowed = {0, 3, 4, 5} | ({1} if "--check" in argv else set())
    if code not in allowed:
        return f"exit {code}"
    lines = [l for l in err.splitlines() if l.startswith("medconv: error:")]
    if code in (3, 4) and len(lines) != 1:
        return "not one error line"
    if any(len(l) > MAX_ERROR_LINE for l in lines):
        return "error line too long"
    if "--json" in argv and code == 0 and result["out"].strip() and len(result["out"]) <= MAX_OUTPUT:
        try:
            json.loads(result["out"])
        except ValueError:
            return "invalid JSON"
    if "--json" not in argv and "\x1b]" in result["out"] + err:
        return "raw escape printed"
    return None


def campaign(seed: int, calls: int | None, budget: float | None, everything: bool, report=print,
             keep: str | None = None) -> dict:
    """Run the campaign; the figures as a dict (failures listed with their seed, mutation and command)."""
    os.environ.setdefault("MEDCONV_ANON_KEY", "fuzz")
    os.environ.pop("MEDCONV_DEBUG", None)
    os.environ.pop("MEDCONV_ALLOW_EXTERNAL_DATA", None)
    import warnings

    warnings.simplefilter("ignore")
    # import what commands use once, here: children are forked ready (and start fast)
    import medconv.cli
    import medconv.cli.anonymize
    import medconv.cli.convert
    import medconv.cli.header
    import medconv.cli.info
    import medconv.cli.stats  # noqa: F401

    rng = random.Random(seed)
    root = tempfile.mkdtemp(prefix="medconv-fuzz-")
    seeds_dir = os.path.join(root, "seeds")
    os.makedirs(seeds_dir)
    with open(os.path.join(root, "secret.raw"), "wb") as fh:  # what a hostile name may point at
        fh.write(b"root:x:0:0:secret\n" * 64)
    from medconv import log

    log.set_quiet(True)  # writing the seeds: no notes about what PNG cannot hold
    try:
        seeds = _generated(seeds_dir) + _real(seeds_dir, everything)
    finally:
        log.set_quiet(False)
    largest = max(os.path.getsize(f) for *_, files in seeds for f in files)
    baseline = _rss()
    stats = collections.Counter()
    codes = collections.Counter()
    per = collections.defaultdict(collections.Counter)
    failures = []
    peak, peak_call = 0, None
    slowest, slowest_call = 0.0, None
    started = time.monotonic()
    n = 0
    try:
        while True:
            if calls is not None and n >= calls:
                break
            if budget is not None and time.monotonic() - started > budget:
                break
            name, fmt, main_file, files = seeds[n % len(seeds)] if n < len(seeds) else rng.choice(seeds)
            argv_t = rng.choice(COMMANDS)
            work = os.path.join(root, "w")
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(os.path.join(work, "in"))
            os.makedirs(os.path.join(work, "out"))
            target = rng.choice(files)
            for f in files:
                with open(f, "rb") as fh:
                    blob = fh.read()
                if f == target and n >= len(seeds):  # the first round: every seed as it is
                    blob = mutate(blob, rng)
                with open(os.path.join(work, "in", os.path.basename(f)), "wb") as fh:
                    fh.write(blob)
            argv = [a.replace("{out}", os.path.join(work, "out")) for a in argv_t]
            argv = argv[:1] + [os.path.join(work, "in", os.path.basename(main_file))] + argv[1:]
            result = call(argv, work)
            n += 1
            stats["calls"] += 1
            codes[result["code"]] += 1
            per[argv_t[0]][fmt] += 1
            if result["maxrss"] > peak:
                peak, peak_call = result["maxrss"], (name, " ".join(argv_t))
            if result["seconds"] > slowest:
                slowest, slowest_call = result["seconds"], (name, " ".join(argv_t))
            problem = judge(argv, result)
            if problem:
                stats[problem] += 1
                record = {"problem": problem, "seed_file": name, "command": " ".join(argv_t),
                          "code": result["code"], "stderr": result["err"][-800:]}
                if keep:
                    case = os.path.join(keep, f"case{len(failures)}")
                    shutil.copytree(os.path.join(work, "in"), case)
                    record["kept"] = case
                failures.append(record)
                report(f"FAIL {problem}: {name} | medconv {' '.join(argv_t)} | exit {result['code']}\n"
                       f"  {result['err'][-400:].strip()}")
            if n % 1000 == 0:
                report(f"{n} calls, {len(failures)} failures, {time.monotonic() - started:.0f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"seed": seed, "calls": stats["calls"], "seconds": round(time.monotonic() - started, 1),
            "seed_files": len(seeds), "largest_seed_mb": round(largest / 2 ** 20, 2), "exit_codes": dict(sorted(codes.items())),
            "tracebacks": stats["traceback"], "exit_70": stats["exit 70"], "hangs": stats["hang"],
            "other_failures": sum(v for k, v in stats.items() if k not in ("calls", "traceback", "exit 70", "hang")),
            "peak_rss_mb": round(peak / 2 ** 20, 1), "peak_call": peak_call,
            "baseline_rss_mb": round(baseline / 2 ** 20, 1), "memory_cap_mb": MEMORY_CAP >> 20,
            "slowest_seconds": round(slowest, 2), "slowest_call": slowest_call,
            "commands": {k: dict(v) for k, v in per.items()}, "failures": failures}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--calls", type=int, default=None, help="number of calls (default: until --budget)")
    parser.add_argument("--budget", type=float, default=None, help="seconds to run at most")
    parser.add_argument("--all-seeds", action="store_true", help="every real seed file (pydicom-data included)")
    parser.add_argument("--keep", help="copy each failing case's input files into this folder")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.calls is None and args.budget is None:
        args.calls = 1000
    figures = campaign(args.seed, args.calls, args.budget, args.all_seeds, report=lambda m: print(m, flush=True),
                       keep=args.keep)
    shown = {k: v for k, v in figures.items() if k != "failures"}
    print(json.dumps(shown, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)
    return 1 if figures["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
