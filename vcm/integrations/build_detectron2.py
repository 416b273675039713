"""Build detectron2 from source and make it importable: ``python -m vcm.integrations.build_detectron2 [SRC]``.

detectron2 has no usable wheel on the registry. ``SRC`` is a source archive (``.tar.gz`` that
unpacks to ``detectron2/``) or a source checkout; default: the shared vendor archive
``$VCM_VENDOR/detectron2-src.tar.gz`` (``VCM_VENDOR`` defaults to ``../shared/vendor``). The
archive is unpacked under ``$VCM_BUILD`` (default ``~/.cache/vcm``), its C++ ops are built in
place (``setup.py build_ext --inplace``: ``pip install -e`` of it fails in pip's build step), and
a ``.pth`` file in site-packages puts the checkout on ``sys.path``. Its model zoo imports
``pkg_resources``, so setuptools is held below 81. An existing build is reused.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tarfile
import time
from pathlib import Path

SETUPTOOLS = "setuptools>=77,<81"  # torch needs >= 77; detectron2's model zoo needs pkg_resources


def default_source() -> Path:
    return Path(os.environ.get("VCM_VENDOR", "../shared/vendor")) / "detectron2-src.tar.gz"


def unpack(archive: Path, build_root: Path) -> Path:
    """The checkout of ``archive`` under ``build_root`` (unpacked once, keyed by the archive's size
    and modification time)."""
    st = archive.stat()
    dest = build_root / f"detectron2-{st.st_size}-{int(st.st_mtime)}"
    if not (dest / "detectron2" / "setup.py").is_file():
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    return dest / "detectron2"


def run(cmd: list[str], cwd: Path | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def link(checkout: Path) -> Path:
    """Write ``detectron2.pth`` (the checkout's path) into site-packages."""
    pth = Path(sysconfig.get_paths()["purelib"]) / "vcm-detectron2.pth"
    pth.write_text(f"{checkout.resolve()}\n")
    return pth


def build(source: Path, build_root: Path) -> Path:
    """Unpack (if an archive), build the ops in place, link; returns the checkout."""
    if not source.exists():
        raise FileNotFoundError(f"detectron2 source {source} not found (an archive or a checkout; "
                                "see README, detectron2)")
    checkout = source if source.is_dir() else unpack(source, build_root)
    run([sys.executable, "-m", "pip", "install", "-q", SETUPTOOLS])
    built = list((checkout / "detectron2").glob("_C*.so"))
    if not built:
        run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=checkout)
    link(checkout)
    return checkout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", nargs="?", type=Path, default=default_source())
    p.add_argument("--build-dir", type=Path, default=Path(os.environ.get("VCM_BUILD", "~/.cache/vcm")).expanduser())
    args = p.parse_args(argv)
    t = time.perf_counter()
    checkout = build(args.source, args.build_dir)
    check = [sys.executable, "-c", "import detectron2, detectron2._C; print('detectron2', detectron2.__version__)"]
    run(check)
    print(f"detectron2 from {checkout}: ready in {time.perf_counter() - t:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
