"""Decoders meet mutated payloads, mask records and headers that lie about the image size, with
valid checksums, in a child process (a crash fails the test): every outcome is an image or a
BitstreamError, no decode takes over 5 s or grows the process by 2 GB."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

W = Path(__file__).resolve().parents[1] / "vcm" / "weights"
CASES = [
    ("jpeg", {"quality": 50}, 200),
    ("webp", {"quality": 50}, 200),
    ("avif", {"quality": 50}, 200),
    ("jpeg", {"quality": 50, "mode": "masked"}, 100),
    ("compressai", {"arch": "mbt2018-mean", "checkpoint": str(W / "mbt2018-mean-tiny" / "q1.pth")}, 60),
    ("emic", {"checkpoint": str(W / "emic-tiny" / "q1.pth")}, 40),
    ("gitssic", {"checkpoint": str(W / "gitssic-tiny" / "q1.pth")}, 40),
    ("mcm", {"checkpoint": str(W / "mcm-tiny" / "q1.pth")}, 40),
    ("segpic", {"checkpoint": str(W / "segpic-tiny" / "q1.pth")}, 40),
    ("hevc", {"qp": 37}, 40),
    ("hevc", {"qp": 37, "mode": "masked"}, 30, "clip"),
    ("avc", {"qp": 37}, 30, "clip"),
]


@pytest.mark.parametrize(("codec", "params", "n", "clip"), [(*c, "")[:4] for c in CASES],
                         ids=[f"{c[0]}-{c[1].get('mode', '')}{'-clip' if c[3:] else ''}" for c in CASES])
def test_mutated_bytes_give_an_image_or_a_bitstream_error(codec: str, params: dict, n: int, clip: str) -> None:
    if codec in ("hevc", "avc"):
        pytest.importorskip("av")
    out = subprocess.run([sys.executable, "-m", "vcm.codecs.fuzz", codec, json.dumps(params), str(n), "1",
                          *([clip] if clip else [])], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"decoder process died (rc {out.returncode}): {out.stderr[-1500:]}"
    result = json.loads(out.stdout.strip().splitlines()[-1])
    counts = result["counts"]
    assert sum(counts.values()) == n and set(counts) <= {"ok", "BitstreamError"}, counts
    assert counts.get("BitstreamError", 0) > 0  # the mutations do reach the checks
    assert result["peak_mb"] < 2048 and result["max_s"] < 5, result
