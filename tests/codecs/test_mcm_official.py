"""MCM's official code and vcm agree: an official checkpoint (seeded weights replayed from
tests/fixtures/official/mcm/keys.json, the rule in make_mcm.py) converted by vcm codes the
committed Kodak crop with the committed visible set into the same quantised latents and
byte-identical strings as MCM's own ``compress`` did (64 scale levels, MCM's table, and 256,
vcm's), and decodes to MCM's x_hat; the registered codec's bytes carry those strings and MCM's
Huffman position record."""

import argparse
import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from compressai.models.google import get_scale_table

from vcm.codecs import CODECS
from vcm.codecs.checkpoint import SCALE_LEVELS, one_thread, update_tables
from vcm.codecs.container import unpack
from vcm.codecs.mcm.codec import McmCodec, load_mcm
from vcm.codecs.mcm.model import McmConfig, McmModel
from vcm.codecs.official import convert_file
from vcm.types import Mask

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "official"
# float32 sums of the 768-wide ViT and 1x1 stacks in another order (Linear patch embedding vs
# MCM's conv, torch's fused attention vs timm's): measured 5.7e-6 on x_hat values up to ~6
X_HAT_TOL = 1e-5


def _make_mcm():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("make_mcm", FIX / "make_mcm.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fixture() -> dict:
    return {"keys": json.loads((FIX / "mcm" / "keys.json").read_text()),
            "strings": json.loads((FIX / "mcm" / "strings.json").read_text()),
            "io": dict(np.load(FIX / "mcm" / "io.npz"))}


def official_state(fixture: dict) -> dict[str, torch.Tensor]:
    """The state dict MCM's code had: seeded parameters, its buffers (values irrelevant: tables
    and compressai constants, which vcm rebuilds) as zeros."""
    keys = fixture["keys"]
    seeded = _make_mcm().seeded_state([(k, tuple(s)) for k, s in keys["seeded"]])
    return seeded | {k: torch.zeros(s) for k, s in keys["buffers"]}


@pytest.fixture(scope="module")
def official_file(fixture: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mcm") / "checkpoint-0.pth"
    args = argparse.Namespace(model="MCM", input_size=256, lr=1e-4)  # main_compress.py saves its args too
    torch.save({"model": official_state(fixture), "optimizer": {}, "epoch": 0, "scaler": {}, "args": args}, path)
    return path


@pytest.fixture(scope="module")
def model(official_file: Path) -> McmModel:
    """The converted model, loaded once (the tests using it come last: ~1 GB less at peak)."""
    return load_mcm(official_file)  # format auto: detected by its keys


def test_converter_infers_the_architecture(official_file: Path, tmp_path: Path) -> None:
    out, conv = convert_file("mcm", official_file, tmp_path / "vcm.pth")
    cfg = McmConfig.from_dict(torch.load(out, weights_only=False)["config"])
    assert cfg == McmConfig(enc_depth=2, dec_dim=128, dec_depth=2, scale_levels=64)  # the official arguments
    assert any("heads" in n for n in conv.notes)


def test_wrong_or_partial_files_name_their_keys(official_file: Path, tmp_path: Path) -> None:
    official = torch.load(official_file, mmap=True, weights_only=False)["model"]  # our own file
    state = {k: v for k, v in official.items() if not k.startswith("blocks.1.mlp.fc2")}
    torch.save({"model": state}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="missing keys encoder.blocks.1.linear2.bias") as e:
        load_mcm(tmp_path / "partial.pth")
    assert "\n" not in str(e.value)
    torch.save({"model": official | {"head.weight": torch.zeros(3)}}, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match="no place for: head.weight"):
        load_mcm(tmp_path / "extra.pth", format="official")
    with pytest.raises(ValueError, match="not a vcm mcm checkpoint"):
        load_mcm(tmp_path / "extra.pth", format="vcm")


def test_factory_reads_official_files_with_heads_override(official_file: Path) -> None:
    codec = CODECS.build("mcm", {"checkpoint": str(official_file), "format": "official", "heads": [6, 8]})
    assert (codec.model.cfg.enc_heads, codec.model.cfg.dec_heads) == (6, 8)


def test_legacy_layout() -> None:
    small = {"enc_dim": 32, "enc_depth": 1, "enc_heads": 2, "dec_dim": 16, "dec_depth": 1, "dec_heads": 2,
             "analysis": [32, 24], "hyper": [24, 16, 16, 12, 8], "slices": 3, "max_support": 2, "charm_hidden": [12]}
    legacy = McmConfig.from_dict(small)  # a stored config without 'layout'
    assert legacy.layout == "vcm" and McmConfig().layout == "official"
    official, old = McmModel(dataclasses.replace(legacy, layout="official")), McmModel(legacy)
    assert official.state_dict().keys() - old.state_dict().keys() == {"encoder.positions.pos", "decoder.positions.pos"}
    assert isinstance(official.g_a[-1], torch.nn.GELU) and not isinstance(old.g_a[-1], torch.nn.GELU)


@pytest.mark.parametrize("levels", [64, SCALE_LEVELS])
def test_same_latents_and_strings_as_mcm(model: McmModel, fixture: dict, levels: int) -> None:
    io, ref = fixture["io"], fixture["strings"][str(levels)]
    model.update(scale_table=get_scale_table(levels=levels), force=True)
    seen: dict[str, list[torch.Tensor]] = {"y": [], "z": []}
    for name, coder in (("y", model.gaussian_conditional), ("z", model.entropy_bottleneck)):
        coder.quantize = _recording(coder.quantize, seen[name])
    x = torch.from_numpy(io["image"]).permute(2, 0, 1)[None].float() / 255
    ids = torch.from_numpy(io["ids"])
    try:
        with one_thread():  # as MCM ran
            y_str, z_str = model.compress([(x, ids)])
    finally:
        for coder in (model.gaussian_conditional, model.entropy_bottleneck):
            del coder.quantize
    y_sym = torch.cat(seen["y"], 1)[0].reshape(-1, 12, 12)
    assert torch.equal(y_sym, torch.from_numpy(io[f"y_symbols_{levels}"]).int())
    assert torch.equal(seen["z"][0][0].reshape(-1, 3, 3), torch.from_numpy(io[f"z_symbols_{levels}"]).int())
    assert (8 * len(y_str), 8 * len(z_str)) == (ref["y_bits"], ref["z_bits"])
    assert y_str == bytes.fromhex(ref["y"]) and z_str == bytes.fromhex(ref["z"])
    with one_thread():
        x_hat = model.decompress(y_str, z_str, [(ids, 256, 256)])[0][0]
    assert (x_hat - torch.from_numpy(io["x_hat"])).abs().max().item() <= X_HAT_TOL


def _recording(quantize, into: list):  # noqa: ANN001, ANN202
    def call(x: torch.Tensor, mode: str, means: torch.Tensor | None = None) -> torch.Tensor:
        out = quantize(x, mode, means)
        if mode == "symbols":
            into.append(out)
        return out

    return call


def test_codec_bytes_carry_mcms_strings_and_record(model: McmModel, fixture: dict) -> None:
    io, ref = fixture["io"], fixture["strings"]
    update_tables(model)  # as loaded: the official 64 levels
    codec = McmCodec(model, source="the official file")
    ids = io["ids"]
    grid = np.zeros(256, bool)
    grid[ids] = True
    mask = dataclasses.replace(Mask.from_grid(grid.reshape(16, 16), 256, 256, 16), order=ids)
    data = codec.encode(image=io["image"], mask=mask).data
    c = unpack(data, expect_codec="mcm")
    assert c.side == bytes.fromhex(ref["positions"]["huffman"])
    assert [s.hex() for s in c.sections] == [ref["64"]["y"], ref["64"]["z"]]
    decoded = codec.decode(data)
    expected = (np.clip(io["x_hat"], 0, 1) * 255).round().transpose(1, 2, 0)
    assert np.abs(decoded.image.astype(float) - expected).max() <= 1  # a rounding tie at most
    assert np.array_equal(np.flatnonzero(decoded.mask.grid), np.sort(ids))
