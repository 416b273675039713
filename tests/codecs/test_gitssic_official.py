"""GIT-SSIC equals the official code (Amygyx/GIT-SSIC) on its own outputs.

The fixtures (tests/fixtures/official/gitssic/, made by ../fixtures/official/make_gitssic.py)
hold random official weights at small widths, a Kodak crop (128 x 192), a group map and what the
official code computed: decoded x_hat, y_hat, z_hat, its rANS strings and estimated bits. Modes:
``one_group`` (``GroupChARTTC_woStructure``) and ``released`` (``GroupChARTTC``, three groups).
"""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vcm.codecs import CODECS
from vcm.codecs.container import unpack
from vcm.codecs.gitssic.codec import load_gitssic, select_groups, unpack_strings
from vcm.codecs.gitssic.model import SHARED, GitSsicConfig, GitSsicModel
from vcm.codecs.official import convert_file
from vcm.types import Mask

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "official" / "gitssic"
TRAINED = Path(__file__).resolve().parents[2] / "vcm" / "weights" / "gitssic-tiny"
CASES = [("one_group", "released"), ("one_group", "official"), ("released", "released")]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], Path]]:
    """Each mode's fixture and its official state dict written as an official file."""
    out = {}
    for mode in ("one_group", "released"):
        d = torch.load(FIX / f"{mode}.pt", weights_only=False)
        path = tmp_path_factory.mktemp("official") / f"{mode}.pth"
        torch.save(d["state_dict"], path)
        out[mode] = (d, path)
    return out


def _groups(d: dict[str, Any], mode: str) -> torch.Tensor:
    return d["groups"][:, 0] if mode == "released" else torch.zeros_like(d["groups"][:, 0])


def _official_strings(d: dict[str, Any], model: GitSsicModel) -> dict[int, list[bytes]]:
    """The fixture's strings in vcm's arrangement for ``model``'s layout."""
    groups = {g: s for g, s in d["strings"].items() if g != "z"}
    if model.cfg.layout == "released":
        return groups | {SHARED: [d["strings"]["z"]]}
    return {g: [d["strings"]["z"], *s] for g, s in groups.items()}


def _run(model: GitSsicModel, d: dict[str, Any], mode: str) -> dict[str, Any]:
    """vcm's strings, decoded x_hat, and the y_hat / z_hat its decoder fed to g_s / h_s."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [model.g_s.register_forward_pre_hook(lambda _, a: seen.__setitem__("y_hat", a[0])),
             model.h_s.register_forward_pre_hook(lambda _, a: seen.__setitem__("z_hat", a[0]))]
    x, g = d["x"].float() / 255, _groups(d, mode)
    strings = model.compress(x, g)
    seen.clear()
    x_hat = model.decompress(strings, g)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        liks = model(x, g)["likelihoods"]
    bits = {k: float(-torch.log2(v).sum()) for k, v in liks.items()}
    return {"strings": strings, "x_hat": x_hat, "bits": bits, **seen}


@pytest.mark.parametrize(("mode", "layout"), CASES)
def test_official_weights_reproduce_the_official_outputs_and_bytes(fixtures: dict, mode: str, layout: str) -> None:
    """64 scale levels as the official code: x_hat, latents, estimated bits and every string."""
    d, path = fixtures[mode]
    model = load_gitssic(path, layout=layout, scale_levels=64)
    got = _run(model, d, mode)
    assert (got["x_hat"] - d["x_hat"]).abs().max() <= 1e-5
    assert torch.equal(got["z_hat"], d["z_hat"])
    assert (got["y_hat"] - d["y_hat"]).abs().max() <= 1e-5
    assert torch.equal(torch.round(got["y_hat"] - d["y_hat"]), torch.zeros_like(d["y_hat"]))
    for k in ("y", "z"):
        assert got["bits"][k] == pytest.approx(d["bits"][k], rel=1e-5)
    ref = _official_strings(d, model)
    assert {g: [8 * len(s) for s in v] for g, v in got["strings"].items()} == \
        {g: [8 * len(s) for s in v] for g, v in ref.items()}
    assert got["strings"] == ref  # byte-identical


@pytest.mark.parametrize("mode", ["one_group", "released"])
def test_coder_tables_equal_the_official_files(fixtures: dict, mode: str) -> None:
    d, path = fixtures[mode]
    model, sd = load_gitssic(path, scale_levels=64), d["state_dict"]
    for em, key in ((model.gaussian_conditional, "y_em"), (model.entropy_bottleneck, "z_em")):
        n = sd[f"{key}._cdf"].shape[1]
        assert torch.equal(em._quantized_cdf[:, :n], sd[f"{key}._cdf"])
        assert not em._quantized_cdf[:, n:].any()
        assert torch.equal(em._offset, sd[f"{key}._cdf_offset"])
        assert torch.equal(em._cdf_length, sd[f"{key}._cdf_length"])


@pytest.mark.parametrize("mode", ["one_group", "released"])
def test_vcm_scale_levels_change_only_y_strings(fixtures: dict, mode: str) -> None:
    """An official file loads with the official 64 levels; vcm's 256 (``scale_levels=256``) give
    the same decoded image and z string, while y strings differ in bytes."""
    d, path = fixtures[mode]
    assert load_gitssic(path).cfg.scale_levels == 64
    model = load_gitssic(path, scale_levels=256)
    assert model.cfg.scale_levels == 256
    got, ref = _run(model, d, mode), _official_strings(d, model)
    assert (got["x_hat"] - d["x_hat"]).abs().max() <= 1e-5
    z = got["strings"][SHARED] if SHARED in got["strings"] else [s[0] for s in got["strings"].values()]
    assert z == (ref[SHARED] if SHARED in ref else [s[0] for s in ref.values()])
    assert got["strings"] != ref


def _masks(d: dict[str, Any], mode: str) -> Mask:
    """A keep-mask whose ``components`` groups are the fixture's map (one group: everything)."""
    ids = d["groups"][0, 0].numpy()
    keep = ids > 0 if mode == "released" else np.ones_like(ids, bool)
    return Mask.from_pixels(np.kron(keep, np.ones((16, 16), bool)), 16)


@pytest.mark.parametrize("mode", ["one_group", "released"])
def test_codec_with_an_official_file_decodes_from_bytes(fixtures: dict, mode: str) -> None:
    """The registered codec reads the official file directly (format auto); its sections hold
    the official strings; decoding the bytes gives the official reconstruction."""
    d, path = fixtures[mode]
    codec = CODECS.build("gitssic", {"checkpoint": str(path), "groups": "components"})  # as loaded: 64 levels
    image = d["x"][0].permute(1, 2, 0).numpy()
    c = unpack(codec.encode(image=image, mask=_masks(d, mode)).data)
    ref = _official_strings(d, codec.model)
    k = codec.model.cfg.slices
    groups = {g: unpack_strings(s, k) for g, s in enumerate(c.sections[:-1]) if s}
    if mode == "one_group":  # all cells are group 1 (group 0 has none)
        assert groups == {1: ref[0][:k]} and c.sections[0] == b""
    else:
        assert groups == {g: v for g, v in ref.items() if g != SHARED}
    assert unpack_strings(c.sections[-1], 1) == ref[SHARED]
    dec = codec.decode(pack_again(c))
    want = (d["x_hat"][0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(dec.image.astype(int) - want.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="released"):
        codec.decode(pack_again(c), groups=[1])
    with pytest.raises(ValueError, match="released"):
        select_groups(pack_again(c), {1})
    with pytest.raises(ValueError, match="released"):
        CODECS.build("gitssic", {"checkpoint": str(path), "send": "foreground"})


def pack_again(c: Any) -> bytes:
    from vcm.codecs.container import pack

    return pack(c).data


def test_convert_weights_and_partial_files(fixtures: dict, tmp_path: Path) -> None:
    d, path = fixtures["released"]
    dst, out = convert_file("gitssic", path, tmp_path / "vcm.pth")
    assert out.config["layout"] == "released" and out.config["dims"] == [8, 8, 12, 16]
    assert out.config["depths"] == [1, 2, 1, 2] and out.config["window"] == 8 and out.config["slices"] == 4
    a, b = load_gitssic(dst, format="vcm"), load_gitssic(path, format="official")
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    partial = {k: v for k, v in d["state_dict"].items() if not k.startswith("char_m_scales.1.")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"missing keys charm\.scale_nets\.1\.0\.bias") as e:
        load_gitssic(tmp_path / "partial.pth")
    assert "\n" not in str(e.value)
    torch.save({"x": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="neither a vcm gitssic checkpoint"):
        load_gitssic(tmp_path / "other.pth")


def test_files_without_a_layout_are_the_vcm_layout() -> None:
    assert GitSsicConfig.from_dict({"dims": [8, 8, 8, 8]}).layout == "vcm"
    assert GitSsicConfig().layout == "official"
    stored = torch.load(TRAINED / "q1.pth", weights_only=False)["config"]  # retrained: the official layout
    assert stored["layout"] == "official" and GitSsicModel(GitSsicConfig.from_dict(stored)).cfg.layout == "official"
    older = {k: v for k, v in stored.items() if k not in ("layout", "scale_levels")}  # as files were written before
    assert GitSsicModel(GitSsicConfig.from_dict(older)).cfg.layout == "vcm"
    with pytest.raises(ValueError, match="layout"):
        GitSsicConfig(layout="paper")


@pytest.mark.parametrize("layout", ["official", "released"])
def test_only_the_official_layout_keeps_groups_independent(layout: str) -> None:
    """Perturbing group 1's pixels: group 2's strings stay identical in the official layout; in
    the released layout the one z (here before rounding) changes on group 2's cells too."""
    from vcm.codecs.checkpoint import update_tables

    torch.manual_seed(0)
    cfg = GitSsicConfig(dims=(8, 8, 12, 16), depths=(1, 2, 1, 2), heads=(1, 2, 2, 2), window=4, hyper_channels=8,
                        slices=4, mlp_ratio=2.0, layout=layout)
    model = GitSsicModel(cfg).eval()
    update_tables(model)
    g = torch.zeros(1, 8, 8, dtype=torch.long)
    g[0, 1:4, 1:4], g[0, 5:8, 4:8] = 1, 2
    x = torch.rand(1, 3, 128, 128)
    y = x.clone()
    y[..., 16:64, 16:64] = torch.rand(1, 3, 48, 48)
    a, b = model.compress(x, g), model.compress(y, g)
    assert a[1] != b[1]
    if layout == "official":
        assert a[2] == b[2] and a[0] == b[0]
    else:
        with torch.no_grad():
            za, zb = (model.h_a(model.analysis(t, g))[..., 1, 1] for t in (x, y))  # covers group 2 only
        assert (za - zb).abs().max() > 1e-4
