from pathlib import Path

import pytest
import yaml

from vcm.cli import main

from .conftest import tiny_config


def test_list(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("coco", "damask", "gt", "jpeg", "compressai", "yolov8_seg", "yolo11_pose", "deeplabv3"):
        assert name in out


def test_run_and_report_from_the_cli(tmp_path: Path, coco_root: str, capsys) -> None:
    cfg = tiny_config(tmp_path, coco_root, dataset={"type": "coco", "root": coco_root, "limit": 1})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["run", str(path), "--no-progress", "grid.codec.0.sweep.quality=[30]"]) == 0
    out = capsys.readouterr().out
    assert "6 items computed" in out and "BD-rate vs anchor jpeg-full on segm_AP" in out  # gt/jpeg-full: computed once
    # the terminal gets the short summary (a line per series, the report's path); tables stay in report.md
    assert "|---" not in out and "## Rate points" not in out and "report.html (every table: report.md)" in out
    lines = out.splitlines()
    row = next(ln for ln in lines if ln.startswith("jpeg-full "))
    assert "anchor" in row and "quality=30: " in row and " at " in row
    assert main(["report", str(tmp_path / "run")]) == 0
    again = capsys.readouterr().out
    assert again.startswith("BD-rate vs anchor jpeg-full") and "|---" not in again
    md = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "## Rate points" in md and "## Complexity" in md


def test_errors_are_reported_with_exit_code_2(tmp_path: Path, coco_root: str, capsys) -> None:
    cfg = tiny_config(tmp_path, coco_root)
    cfg["devcie"] = "cpu"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["run", str(path)]) == 2
    assert "unknown key 'devcie' (did you mean 'device'?)" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "not a vcm run folder" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    (tmp_path / "broken.yaml").write_text("name: x\ngrid: [\n")
    assert main(["run", str(tmp_path / "broken.yaml")]) == 2
    err = capsys.readouterr().err
    assert "broken.yaml: not valid YAML (line 3" in err and "Traceback" not in err
    for var in ("VCM_MAX_DECODE_BYTES", "VCM_MAX_PIXELS"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(var, "lots")
            assert main(["run", str(tmp_path / "missing.yaml")]) == 2
        assert f"{var} must be" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):  # --debug: the traceback, before or after the subcommand
        main(["report", str(tmp_path / "nothing"), "--debug"])


def test_component_errors_surface_before_any_image(tmp_path: Path, coco_root: str, capsys) -> None:
    """A bad parameter value fails when the components are built, naming the grid entry, before
    a single record is written (a wrong type fails even earlier, in the graph check)."""
    cfg = tiny_config(tmp_path, coco_root)
    cfg["grid"]["codec"][0]["sweep"]["quality"] = [20, 150]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["run", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "grid.codec 'jpeg-full'" in err and "quality must be an integer in [0, 100], got 150" in err
    from vcm.pipeline.store import ResultStore

    store = ResultStore(tmp_path / "run" / "results.sqlite")
    assert store.done() == set()
    store.close()


def test_bad_checkpoints_and_devices_are_named(tmp_path: Path, coco_root: str, capsys) -> None:
    weights = Path(__file__).resolve().parents[1] / "vcm" / "weights"
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "junk.pth").write_bytes(bytes(range(256)) * 4)
    cases = {str(tmp_path / "empty.pth"): "cannot be read as a torch file",
             str(tmp_path / "junk.pth"): "cannot be read as a torch file",
             str(weights / "gitssic-tiny" / "q1.pth"): "is not a checkpoint of EMIC"}
    for ckpt, message in cases.items():
        cfg = tiny_config(tmp_path, coco_root)
        cfg["grid"]["codec"] = [{"type": "emic", "checkpoint": ckpt}]
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        assert main(["run", str(path), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert message in err and "grid.codec 'emic'" in err and "Traceback" not in err
    path.write_text(yaml.safe_dump({**tiny_config(tmp_path, coco_root), "device": "gpu"}, sort_keys=False))
    assert main(["run", str(path), "--no-progress"]) == 2
    assert "device must be auto, cpu or cuda[:N], got 'gpu'" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({**tiny_config(tmp_path, coco_root), "report": {"anchor": "jpg"}}, sort_keys=False))
    assert main(["run", str(path), "--no-progress"]) == 2  # before any image is computed
    assert "report.anchor 'jpg' is not a series" in capsys.readouterr().err
