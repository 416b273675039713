"""Third-party components without editing vcm: the example plugin package (entry points) adds a
codec and a task head; a run made with them reopens in `vcm report`; a `plugins:` module that
registers on import works too."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import REPO, tiny_config


def test_example_plugin_installs_runs_and_reopens(tmp_path: Path, coco_root: str) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(REPO / "examples" / "plugin")], check=True, capture_output=True)
    cfg = tiny_config(tmp_path, coco_root, dataset={"type": "coco", "root": coco_root, "limit": 2})
    cfg["grid"]["mask"] = [{"type": "gt"}]
    cfg["grid"]["codec"] = [{"type": "posterize", "sweep": {"bits": [2, 4, 6]}},
                            {"type": "posterize", "mode": "masked", "label": "posterize-masked", "sweep": {"bits": [2, 4, 6]}}]
    cfg["grid"]["task"] = [{"type": "person_seg", "label": "person"}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(target)}
    cli = [sys.executable, "-m", "vcm.cli"]
    out = subprocess.run([*cli, "list"], env=env, capture_output=True, text=True, check=True).stdout
    assert "posterize" in out and "person_seg" in out
    run = subprocess.run([*cli, "run", str(tmp_path / "c.yaml"), "--no-progress"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "6 points" in run.stdout and "BD-rate vs anchor" in run.stdout
    rep = subprocess.run([*cli, "report", str(tmp_path / "run"), "--anchor", "posterize-masked"], env=env,
                         capture_output=True, text=True)
    assert rep.returncode == 0 and "BD-rate vs anchor posterize-masked" in rep.stdout, rep.stderr[-2000:]
    without = subprocess.run([*cli, "report", str(tmp_path / "run")], capture_output=True, text=True)
    assert without.returncode == 2 and "unknown codec 'posterize'" in without.stderr  # plugin not installed


def test_plugins_key_imports_modules_that_register(tmp_path: Path, coco_root: str) -> None:
    from vcm.config import parse_experiment
    from vcm.pipeline.runner import prepare, run

    (tmp_path / "my_codecs.py").write_text(
        "from vcm.codecs import CODECS\nfrom vcm.codecs.base import FrameCodec\nfrom vcm.codecs.pillow import jpeg\n"
        "@CODECS.register('jpeg_again')\ndef jpeg_again(*, quality: int = 50, mode: str = 'full') -> FrameCodec:\n"
        "    return jpeg(quality=quality, mode=mode)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        cfg = tiny_config(tmp_path, coco_root, dataset={"type": "coco", "root": coco_root, "limit": 1})
        cfg["grid"]["codec"] = [{"type": "jpeg_again", "sweep": {"quality": [20, 60]}}]
        exp = prepare(parse_experiment({**cfg, "plugins": ["my_codecs"]}))
        assert run(exp, progress=False).computed == 1 * (2 + 1)
    finally:
        sys.path.remove(str(tmp_path))
