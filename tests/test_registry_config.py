from pathlib import Path

import pytest
import yaml

from vcm.config import ConfigError, apply_overrides, load_config, parse_experiment
from vcm.registry import Registry, RegistryError

REPO = Path(__file__).resolve().parents[1]


def test_registry_duplicates_and_suggestions() -> None:
    reg: Registry[object] = Registry("thing")

    @reg.register("alpha")
    def alpha(*, x: int = 1) -> object:
        return x

    with pytest.raises(RegistryError, match="already registered"):
        reg.register("alpha")(alpha)
    with pytest.raises(RegistryError, match="did you mean 'alpha'"):
        reg.get("alpah")
    with pytest.raises(RegistryError, match=r"unknown parameter\(s\) 'y'; allowed: x"):
        reg.build("alpha", {"y": 2})
    assert reg.build("alpha", {"x": 5}) == 5


def test_lazy_entry_missing_module_gives_install_hint() -> None:
    reg: Registry[object] = Registry("thing")
    reg.register_lazy("ghost", "vcm_no_such_module:Thing", extra="ghost")
    assert "ghost" in reg.names()
    with pytest.raises(ImportError, match=r"vcm\[ghost\]"):
        reg.get("ghost")


def test_import_vcm_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, vcm, vcm.cli, vcm.config; print(all(m not in sys.modules for m in ('torch', 'compressai', 'cv2')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def _raw() -> dict:
    return yaml.safe_load((REPO / "configs" / "quickstart.yaml").read_text())


def test_unknown_key_names_key_and_allowed() -> None:
    raw = _raw()
    raw["reprot"] = {}
    with pytest.raises(ConfigError, match=r"unknown key 'reprot' \(did you mean 'report'\?\); allowed: name, pipeline"):
        parse_experiment(raw)
    raw = _raw()
    raw["report"]["anchr"] = "x"
    with pytest.raises(ConfigError, match="unknown key 'anchr'.*allowed: anchor, bd_method, bd_fit, formats"):
        parse_experiment(raw)


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("report", "bd_fit", "spline", "report.bd_fit must be envelope or curve_fit, got 'spline'"),
    ("eval", "complexity", "always", "eval.complexity must be per_size, once or off, got 'always'"),
])
def test_bad_fit_and_complexity_values_are_named(section: str, key: str, value: str, message: str) -> None:
    raw = _raw()
    raw.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError, match=message):
        parse_experiment(raw)


def test_wrong_type_and_bad_sweep() -> None:
    raw = _raw()
    raw["seed"] = "three"
    with pytest.raises(ConfigError, match="seed: expected int"):
        parse_experiment(raw)
    raw = _raw()
    raw["grid"]["codec"][0]["sweep"] = {"quality": []}
    with pytest.raises(ConfigError, match="non-empty list"):
        parse_experiment(raw)


def test_overrides_apply_to_nested_and_list_items() -> None:
    cfg = load_config(REPO / "configs" / "quickstart.yaml",
                      ["dataset.limit=5", "grid.codec.1.fill=constant", "grid.codec.0.sweep.quality=[5, 95]",
                       "report.anchor=gt/jpeg-full"])
    assert cfg.dataset.params["limit"] == 5
    assert cfg.grid["codec"][1].params["fill"] == "constant"
    assert cfg.grid["codec"][0].sweep == {"quality": [5, 95]}
    assert cfg.report.anchor == "gt/jpeg-full"


def test_bad_overrides() -> None:
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="not an index"):
        apply_overrides({"a": [1, 2]}, ["a.7=1"])


def test_unset_assets_variable_is_a_clear_error(monkeypatch) -> None:
    from vcm.assets import MissingAssetError, assets_root, expand_path

    monkeypatch.delenv("VCM_ASSETS", raising=False)
    with pytest.raises(MissingAssetError, match="VCM_ASSETS used in"):
        expand_path("${VCM_ASSETS}/data/coco-mini")
    with pytest.raises(MissingAssetError, match="VCM_ASSETS is not set"):
        assets_root()


def test_parameter_types_and_bad_overrides_are_named() -> None:
    """Plain-typed parameters are checked before building; overrides that are not YAML or go
    through a value name themselves."""
    from vcm.codecs import CODECS
    from vcm.data import DATASETS

    with pytest.raises(RegistryError, match="dataset 'coco': parameter 'limit' must be an integer or null, got 'ten'"):
        DATASETS.build("coco", {"root": "x", "limit": "ten"})
    with pytest.raises(RegistryError, match="parameter 'mode' must be a string, got 3"):
        CODECS.build("jpeg", {"mode": 3})
    CODECS.build("jpeg", {"quality": 30, "scale": 1})  # an int where a float is expected is fine
    with pytest.raises(ConfigError, match="not valid YAML"):
        apply_overrides({"grid": {}}, ["grid.q=[20,60"])
    with pytest.raises(ConfigError, match="'name' is a value, not a mapping"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


def test_executor_shorthand_overrides_and_bad_values(tmp_path: Path) -> None:
    base = {"name": "x", "pipeline": "p.yaml", "dataset": {"type": "coco"}, "grid": {"codec": [{"type": "jpeg"}]}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**base, "executor": "process"}))
    cfg = load_config(path, ["executor.workers=3"])
    assert (cfg.executor.type, cfg.executor.workers, cfg.executor.threads) == ("process", 3, None)
    assert load_config(path).executor.claim_ttl == 60.0
    for bad, word in (({"type": "dask"}, "inprocess, process or ray"), ({"type": "process", "workers": 0}, "workers"),
                      ({"type": "ray", "claim_ttl": 0}, "claim_ttl"), ({"type": "ray", "nodes": 2}, "unknown key 'nodes'")):
        with pytest.raises(ConfigError, match=word):
            parse_experiment({**base, "executor": bad})
