"""Published reference curves (report.references): strict validation at config load, the shipped
SegPIC points, and a real report that draws a reference and computes BD values against it."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from vcm.config import ConfigError, load_config, parse_experiment
from vcm.report.references import parse_references

REPO = Path(__file__).resolve().parents[1]
SEGPIC_CSV = REPO / "configs" / "references" / "segpic_kodak.csv"
INLINE = {"series": "X (paper)", "metric": "psnr", "source": "arXiv 0000.0000, Table 1",
          "bpp": [0.1, 0.2, 0.4], "value": [28.0, 30.5, 33.0]}


def test_shipped_segpic_points_are_the_official_kodak_section() -> None:
    (ref,) = parse_references([str(SEGPIC_CSV)])
    assert ref.metric == "psnr" and ref.series == "SegPIC (ECCV 2024)"
    assert ref.bpp == (0.120, 0.194, 0.288, 0.439, 0.633, 0.861)
    assert ref.value == (29.24, 30.76, 32.25, 34.23, 36.01, 37.81)
    assert "2403.00628" in ref.source and "2049d424024d4b1e4e2b929dfd4da9383902f332" in ref.source


def test_configs_load_with_the_published_curve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("VCM_SEGPIC_OFFICIAL", "/nowhere")
    for name in ("segpic_kodak.yaml", "segpic_official_kodak.yaml"):
        cfg = load_config(REPO / "configs" / name)
        assert [r.series for r in cfg.report.references] == ["SegPIC (ECCV 2024)"], name
        again = parse_experiment(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))  # the run folder's copy
        assert again.report.references == cfg.report.references


def bad(**change: Any) -> dict[str, Any]:
    return {k: v for k, v in {**INLINE, **change}.items() if v is not None}


@pytest.mark.parametrize(("entry", "message"), [
    (bad(colour="red"), r"unknown key\(s\) \['colour'\]"),
    (bad(source=None), r"missing \['source'\]"),
    (bad(source=" "), "source is required"),
    (bad(metric="PSNR"), "unknown metric 'PSNR'; known: psnr, msssim, segm_AP"),
    (bad(metric="seg:segm_AP", value=[20.0, 30.0, 35.0]), r"point \(bpp 0.1, value 20.0\) out of range.*\[0.0, 1.0\]"),
    (bad(bpp=[0.1, "a lot", 0.4]), "report.references\\[0\\].bpp: 'a lot' is not a number"),
    (bad(bpp=[0.1, float("nan"), 0.4]), "out of range: bpp > 0"),
    (bad(bpp=[0.1, 0.4, 0.2]), "bpp must rise strictly from point to point, got 0.2 after 0.4"),
    (bad(bpp=[0.1], value=[28.0]), ">= 2 points"),
    (bad(value=[28.0, 30.0]), "3 bpp and 2 values"),
    (bad(series="reference"), "reserved"),
    ({"csv": "a.csv", "series": "y"}, r"a CSV reference is \{csv: PATH\} alone"),
    (7, "give a CSV path or a mapping"),
])
def test_bad_references_are_config_errors(entry: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_references([entry])


def test_duplicate_and_csv_problems_name_the_file_and_row(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'X \(paper\)' \(psnr\) is given twice"):
        parse_references([INLINE, INLINE])
    with pytest.raises(ConfigError, match="reference CSV not found: .*nope.csv"):
        parse_references([str(tmp_path / "nope.csv")])
    path = tmp_path / "r.csv"
    path.write_text("series,bpp,metric,value,source,year\n")
    with pytest.raises(ConfigError, match=r"has columns \[.*'year'\]; expected series, bpp, metric, value, source"):
        parse_references([str(path)])
    path.write_text("# a comment\nseries,bpp,metric,value,source\nA,0.1,psnr,30,s\nA,0.2,psnr,31dB,s\n")
    with pytest.raises(ConfigError, match="r.csv data row 2 value: '31dB' is not a number"):
        parse_references([{"csv": str(path)}])
    path.write_text("series,bpp,metric,value,source\nA,0.1,psnr,30,s\nA,0.2,psnr,31,t\n")
    with pytest.raises(ConfigError, match="names several sources"):
        parse_references([str(path)])


def test_a_bad_reference_stops_vcm_run_at_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vcm.cli import main

    cfg = small_config(tmp_path, [bad(bpp=[0.3, 0.2, 0.4])])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--no-progress"]) == 2
    assert "bpp must rise strictly" in capsys.readouterr().err and not (tmp_path / "run").exists()
    cfg["report"]["references"] = [bad(series="jpeg-full")]  # the name of a measured series
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--no-progress"]) == 2
    assert "'jpeg-full' is also a series of this grid" in capsys.readouterr().err
    assert not (tmp_path / "run" / "results.sqlite").exists()


def small_config(tmp_path: Path, references: list[Any], **report: Any) -> dict[str, Any]:
    """Two Kodak images, JPEG at four qualities and WebP at three, PSNR only."""
    return {"name": "refs", "pipeline": str(REPO / "pipelines" / "codec.yaml"),
            "dataset": {"type": "folder", "root": "${VCM_ASSETS}/data/kodak", "limit": 2},
            "grid": {"codec": [{"type": "jpeg", "mode": "full", "sweep": {"quality": [10, 30, 60, 90]}},
                               {"type": "webp", "mode": "full", "sweep": {"quality": [10, 50, 90]}}]},
            "output_dir": str(tmp_path / "run"),
            "report": {"anchor": "jpeg-full", "gallery": 0, "references": references, **report}}


def test_report_draws_a_reference_and_computes_bd_against_it(tmp_path: Path, assets: Path) -> None:
    """A "published" curve at half JPEG's measured rates: JPEG needs +100 % bits against it, it
    needs -50 % against JPEG (the anchor); a reference on a metric the run lacks is named, not drawn."""
    from vcm.pipeline.runner import prepare, run
    from vcm.report.build import make_report

    exp = prepare(parse_experiment(small_config(tmp_path, [])))
    run(exp, progress=False)
    rows = list(csv.DictReader(make_report(exp.run_dir)["csv"].open()))
    jpeg = sorted((float(r["bpp"]), float(r["psnr"])) for r in rows if r["series"] == "jpeg-full")
    half = {"series": "half JPEG", "metric": "psnr", "source": "made by this test",
            "bpp": [b / 2 for b, _ in jpeg], "value": [p for _, p in jpeg]}
    other = {**half, "series": "SSIM paper", "metric": "msssim", "value": [0.9, 0.92, 0.95, 0.97]}
    exp = prepare(parse_experiment(small_config(tmp_path, [half, other])))
    assert run(exp, progress=False).computed == 0  # the same items: only the report changes
    files = make_report(exp.run_dir)
    summary = json.loads((exp.run_dir / "report" / "summary.json").read_text())
    legend = summary["legends"]["psnr"]  # labels of the drawn lines, flags in brackets
    assert legend[0] == "jpeg-full" and legend[2].startswith("half JPEG (published)")
    vs = {b["series"]: b for b in summary["bd_vs_references"]}
    assert set(vs) == {"jpeg-full", "webp-full"} and all(b["anchor"] == "half JPEG" for b in vs.values())
    assert vs["jpeg-full"]["bd_rate_pct"] == pytest.approx(100.0, abs=1e-6) and vs["jpeg-full"]["overlap_pct"] == pytest.approx(100)
    assert vs["webp-full"]["bd_rate_pct"] is not None
    main = {b["series"]: b for b in summary["bdrate"] if b["metric"] == "psnr"}
    assert main["half JPEG"]["bd_rate_pct"] == pytest.approx(-50.0, abs=1e-6) and main["half JPEG"]["published"]
    assert not any(r["series"] == "half JPEG" for r in summary["rows"])  # not a measured rate point
    md, page = files["md"].read_text(), files["html"].read_text()
    assert "| half JPEG (published) | -50.00 [overlap] |" in md and "## Published reference curves" in md
    assert "made by this test" in md and "no: this run measures no 'msssim'" in md
    assert "<h3>BD values against <code>half JPEG</code> (psnr)</h3>" in page and "made by this test" in page
    bd_csv = list(csv.DictReader(files["bdrate"].open()))
    assert {(r["series"], r["anchor"]) for r in bd_csv} >= {("jpeg-full", "half JPEG"), ("half JPEG", "jpeg-full")}
    again = make_report(exp.run_dir, anchor="half JPEG")  # the published curve as the anchor
    main = {b["series"]: b for b in json.loads((exp.run_dir / "report" / "summary.json").read_text())["bdrate"]}
    assert main["jpeg-full"]["bd_rate_pct"] == pytest.approx(100.0, abs=1e-6)
    assert "BD-rate vs anchor `half JPEG`" in again["md"].read_text()
    with pytest.raises(ValueError, match="'SSIM paper' is a published reference this run cannot be compared with"):
        make_report(exp.run_dir, anchor="SSIM paper")


def test_official_segpic_config_without_checkpoints_stops_before_any_image(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the six official checkpoints (variable unset, or a folder without them) `vcm run`
    exits 2 with one line naming the file, before any image is coded."""
    import sqlite3

    from vcm.cli import main

    monkeypatch.chdir(REPO)
    for folder in (None, tmp_path / "empty"):
        if folder is None:
            monkeypatch.delenv("VCM_SEGPIC_OFFICIAL", raising=False)
        else:
            monkeypatch.setenv("VCM_SEGPIC_OFFICIAL", str(folder))
        rc = main(["run", "configs/segpic_official_kodak.yaml", "--no-progress", f"output_dir={tmp_path / 'run'}"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and "segpic_0018_best.pth.tar" in err
        assert "official segpic checkpoints: six MSE models" in err and "drive.google.com" in err
        assert "VCM_SEGPIC_OFFICIAL" in err if folder is None else f"{folder}/segpic_0018_best.pth.tar" in err
        db = tmp_path / "run" / "results.sqlite"
        assert not db.exists() or sqlite3.connect(db).execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0
