from pathlib import Path

import pytest

from vcm.config import parse_experiment
from vcm.pipeline.runner import prepare, run
from vcm.report.bdrate import Curve, bd_rate
from vcm.report.build import make_report

from .conftest import tiny_config


def test_bd_rate_on_known_curves() -> None:
    anchor = Curve((0.1, 0.2, 0.4, 0.8), (30.0, 33.0, 36.0, 39.0))
    half = Curve(tuple(r / 2 for r in anchor.rate), anchor.metric)
    assert bd_rate(anchor, half).value == pytest.approx(-50.0, abs=1e-6)
    double = Curve(tuple(r * 2 for r in anchor.rate), anchor.metric)
    assert bd_rate(anchor, double).value == pytest.approx(100.0, abs=1e-6)
    for method in ("pchip", "cubic"):
        assert bd_rate(anchor, half, method).value == pytest.approx(-50.0, abs=1e-6)
    bumpy = Curve((0.05, 0.1, 0.2, 0.4), (30.0, 29.0, 33.0, 36.0))
    assert not bumpy.monotonic and bumpy.envelope().rate == (0.05, 0.2, 0.4)
    res = bd_rate(anchor, bumpy)
    assert res.value is not None and "envelope" in res.flags and res.points == (4, 3) and "points" in res.flags
    far = Curve((1.0, 2.0, 3.0), (50.0, 51.0, 52.0))
    assert bd_rate(anchor, far).value is None and "do not overlap" in bd_rate(anchor, far).note


def test_bd_values_carry_overlap_methods_and_flags() -> None:
    """A clean pair is unflagged; a pair that overlaps on 40 % of the metric range is flagged
    whatever its value; BD-metric is the mean metric gap at equal rate."""
    from vcm.report.bdrate import METHODS, bd_metric

    anchor = Curve((0.1, 0.2, 0.4, 0.8), (30.0, 33.0, 36.0, 39.0))
    up = Curve(anchor.rate, tuple(m + 1.0 for m in anchor.metric))
    clean = bd_rate(anchor, up)
    assert clean.flags == () and not clean.fragile and clean.overlap == pytest.approx(0.8)
    assert set(clean.methods) == set(METHODS) and all(v < 0 for v in clean.methods.values())
    assert bd_metric(anchor, up).value == pytest.approx(1.0, abs=1e-6)  # +1 dB at every rate
    shifted = Curve((0.3, 0.6, 1.2, 2.4), (36.5, 38.0, 39.5, 41.0))  # metric overlap 36.5..39 of 30..41
    res = bd_rate(anchor, shifted)
    assert res.overlap == pytest.approx(2.5 / 11) and "overlap" in res.flags and res.fragile
    with pytest.raises(ValueError, match="interpolation"):
        bd_rate(anchor, up, "linear")


def test_report_files_and_tables(tmp_path: Path, coco_root: str) -> None:
    cfg = tiny_config(tmp_path, coco_root, report={"anchor": "none/jpeg-full"})
    exp = prepare(parse_experiment(cfg))
    run(exp, progress=False)
    files = make_report(exp.run_dir)
    for key in ("md", "html", "csv", "bdrate", "plot:segm_AP", "plot:psnr_in"):
        assert files[key].is_file() and files[key].stat().st_size > 100, key
    md = files["md"].read_text()
    assert "BD-rate vs anchor `jpeg-full`" in md and "gt/jpeg-masked" in md  # none/jpeg-full: an alias
    assert "none/jpeg-masked = jpeg-full" in md
    page = files["html"].read_text()
    assert "data:image/png;base64," in page and page.count("data:image/jpeg;base64,") == 2  # gallery: 2 images
    assert "<table class=\"sortable\">" in page and "an oracle no deployed encoder has" in page
    bd = files["bdrate"].read_text().splitlines()
    assert bd[0].startswith("series,metric,anchor,bd_rate_pct,bd_rate_cubic,bd_rate_pchip,bd_rate_akima,"
                            "bd_rate_envelope,bd_rate_curve_fit,overlap_pct")
    assert "- BD curve fit: envelope" in md
    rows = list(__import__("csv").DictReader(files["bdrate"].open()))
    assert rows and not any(r["series"] == "jpeg-full" for r in rows)  # the anchor has no BD row
    assert all("points" in r["flags"].split() for r in rows)  # two qualities per series: flagged
    assert "points: fewer than 4 points" in md
    with pytest.raises(ValueError, match="anchor 'nope' is not a series"):
        make_report(exp.run_dir, anchor="nope")


def test_pseudo_gt_on_unlabeled_folder(tmp_path: Path, assets: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("kodim05.png", "kodim15.png", "kodim23.png"):  # images with confident objects
        (folder / name).symlink_to((assets / "data" / "kodak" / name).resolve())
    cfg = tiny_config(tmp_path, "", dataset={"type": "folder", "root": str(folder)}, eval={"pseudo_gt": True})
    cfg["grid"]["mask"] = [{"type": "damask", "visible_ratio": 0.5}]
    exp = prepare(parse_experiment(cfg))
    run(exp, progress=False)
    files = make_report(exp.run_dir)
    import csv

    rows = list(csv.DictReader(files["csv"].open()))
    ref = next(r for r in rows if r["series"] == "reference")
    assert float(ref["segm_AP"]) == pytest.approx(1.0)  # the reference scored against itself
    coded = [float(r["segm_AP"]) for r in rows if r["series"] != "reference"]
    assert all(0.0 <= v < 1.0 for v in coded)


def test_empty_pseudo_gt_is_a_clear_error(tmp_path: Path, assets: Path) -> None:
    cfg = tiny_config(tmp_path, "", dataset={"type": "folder", "root": str(assets / "data" / "kodak"), "limit": 1},
                      eval={"pseudo_gt": True, "pseudo_gt_min_score": 0.99})
    cfg["grid"]["mask"] = [{"type": "none"}]
    exp = prepare(parse_experiment(cfg))
    run(exp, progress=False)
    with pytest.raises(ValueError, match="pseudo ground truth is empty"):
        make_report(exp.run_dir)


def test_semantic_and_pose_heads_through_the_report(tmp_path: Path, coco_root: str) -> None:
    people = [151938, 501368]  # images where persons cover 46-63 % of the frame
    cfg = tiny_config(tmp_path, coco_root, dataset={"type": "coco", "root": coco_root, "image_ids": people})
    cfg["grid"]["mask"] = [{"type": "gt", "category_ids": [1], "dilate": 4}]
    cfg["grid"]["codec"] = [{"type": "webp", "mode": "masked", "sweep": {"quality": [5, 80]}}]
    cfg["grid"]["task"] = [{"type": "deeplabv3", "label": "dl"}, {"type": "yolo11_pose", "label": "pose"}]
    exp = prepare(parse_experiment(cfg))
    run(exp, progress=False)
    import csv

    rows = list(csv.DictReader(make_report(exp.run_dir)["csv"].open()))
    ref = next(r for r in rows if r["series"] == "reference")
    assert 0.0 < float(ref["dl:mIoU"]) <= 1.0 and float(ref["dl:IoU_person"]) > 0.5
    assert 0.0 < float(ref["pose:kp_AP"]) <= 1.0
    low, high = (r for r in rows if r["series"] != "reference")
    assert float(low["bpp"]) < float(high["bpp"]) and float(low["bpp_side"]) > 0


def test_rereporting_reuses_scores_works_anywhere_and_exports(tmp_path: Path, coco_root: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A second report (new anchor, new method, from another folder) runs no COCOeval pass; a
    cached `vcm run` leaves the report alone; `vcm export` writes one row per record."""
    import csv

    from vcm.cli import main
    from vcm.metrics import coco as coco_metrics
    from vcm.report import aggregate as agg

    cfg = tiny_config(tmp_path, coco_root, report={"anchor": "none/jpeg-full"})
    cfg["pipeline"], cfg["output_dir"] = "pipelines/mask_codec_task.yaml", "run"  # relative to the run's folder
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    import shutil

    shutil.copytree(Path.cwd() / "pipelines", tmp_path / "pipelines")
    monkeypatch.chdir(tmp_path)
    exp = prepare(parse_experiment(cfg))
    run(exp, progress=False)
    first = make_report(exp.run_dir)["md"].read_text()
    calls = []
    monkeypatch.setattr(agg, "coco_ap", lambda *a, **k: calls.append(1) or coco_metrics.coco_ap(*a, **k))
    monkeypatch.chdir(tmp_path.parent)  # elsewhere: the relative pipeline resolves from the run's folder
    files = make_report(tmp_path / "run", anchor="gt/jpeg-masked", method="akima")
    md = files["md"].read_text()
    assert calls == [] and "BD interpolation: pchip" in first and "BD interpolation: akima" in md
    assert "anchor `gt/jpeg-masked`" in md
    from vcm.report.build import report_is_current

    assert not report_is_current(tmp_path / "run")  # written for another anchor and method
    make_report(tmp_path / "run")  # back to the config's anchor and method: the report is current
    assert report_is_current(tmp_path / "run") and calls == []
    (tmp_path / "run" / "config.yaml").write_text((tmp_path / "run" / "config.yaml").read_text() + "\n")
    assert not report_is_current(tmp_path / "run")  # the config changed
    assert main(["export", str(tmp_path / "run")]) == 0
    rows = list(csv.DictReader((tmp_path / "run" / "records.csv").open()))
    assert len(rows) == 3 * (4 + 1) and {"sample_id", "series", "point", "bpp", "ms_encode"} <= set(rows[0])


def test_bpp_mean_of_images_and_pooled() -> None:
    """A small image at 2 bpp and a 3x larger one at 1 bpp: mean 1.5, pooled 1.25."""
    from vcm.report.aggregate import bpp_values

    recs = {"a": {"bpp": 2.0, "height": 10, "width": 10, "bytes": {"total": 25}},
            "b": {"bpp": 1.0, "height": 30, "width": 10, "bytes": {"total": 37.5}}}
    assert bpp_values(recs, "mean") == {"bpp": 1.5, "bpp_mean": 1.5, "bpp_pooled": 1.25}
    assert bpp_values(recs, "pooled")["bpp"] == 1.25


def test_bootstrap_intervals_bracket_the_estimates(tmp_path: Path, coco_root: str) -> None:
    """report.bootstrap: per-point 95 % intervals around bpp, PSNR and AP; BD-rate intervals."""
    import csv

    cfg = tiny_config(tmp_path, coco_root, report={"anchor": "jpeg-full", "bootstrap": 30})
    for c in cfg["grid"]["codec"]:
        c["sweep"]["quality"] = [10, 40, 90]
    exp = prepare(parse_experiment(cfg))
    run(exp, progress=False)
    files = make_report(exp.run_dir)
    rows = [r for r in csv.DictReader(files["csv"].open()) if r["series"] != "reference"]
    for r in rows:
        for k in ("bpp", "psnr", "segm_AP"):
            assert float(r[f"{k}_lo"]) <= float(r[k]) + 1e-9 <= float(r[f"{k}_hi"]) + 2e-9, (k, r)
    assert any(float(r["segm_AP_hi"]) > float(r["segm_AP_lo"]) for r in rows)
    bd = list(csv.DictReader(files["bdrate"].open()))
    assert any(b["bd_rate_ci95"].startswith("[") for b in bd)
