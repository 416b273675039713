"""SegPIC's official checkpoints in vcm, proven against the official code.

tests/fixtures/official/segpic/grid4.pt holds what the official ``sac.py`` did
(tests/fixtures/official/make_segpic.py): small widths, seeded weights, the released inference
mode (``--testNoMask --grid 4``, centred zero padding to 64, 64 Gaussian scale levels), on two
Kodak crops (120x100: y 8x8; 50x40: y 4x4, one attention window, still shifted). Its state dict
(official keys, as ``train.py`` saves it) loads through vcm's converter; vcm reproduces the
strings byte for byte, the decoded latents and the reconstruction.
"""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck
from compressai.models.google import get_scale_table

from vcm.cli import main
from vcm.codecs import CODECS
from vcm.codecs.checkpoint import TABLES
from vcm.codecs.container import unpack
from vcm.codecs.segpic.codec import load_segpic
from vcm.codecs.segpic.model import GRID, SegpicConfig, SegpicModel
from vcm.codecs.entropy.bottleneck import SignedEntropyBottleneck
from vcm.codecs.segpic.official import Converter, vcm_key

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "official" / "segpic" / "grid4.pt"
CASES = ("120x100", "50x40")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def official() -> dict:
    return torch.load(FIXTURE, weights_only=False)


@pytest.fixture(scope="module")
def official_file(official: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state dict as the official train.py saves it (``{"epoch", "state_dict", ...}``)."""
    path = tmp_path_factory.mktemp("segpic") / "segpic_0018_best.pth.tar"
    torch.save({"epoch": 1, "state_dict": official["state_dict"], "loss": 1.0}, path)
    return path


def _model(path: Path, official_levels: bool) -> SegpicModel:
    """vcm's model of the official file: as loaded (the official 64 scale levels), or with
    vcm's 256 (``scale_levels=256``)."""
    return load_segpic(path) if official_levels else load_segpic(path, scale_levels=256)


def _padded(case: dict) -> torch.Tensor:
    return F.pad(case["x"].float() / 255, case["padding"])


def _compress(model: SegpicModel, x: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> tuple[list[bytes], torch.Tensor]:
    """vcm's strings and y's integers as its encoder hands them to the coder (slices in order)."""
    gc, symbols = model.gaussian_conditional, []
    quantize = gc.quantize

    def recording(inputs: torch.Tensor, mode: str, means: torch.Tensor | None = None) -> torch.Tensor:
        out = quantize(inputs, mode, means)
        symbols.append(out)
        return out

    monkeypatch.setattr(gc, "quantize", recording)
    strings = model.compress(x)
    monkeypatch.undo()
    return strings, torch.cat(symbols, 1)


def _decode(model: SegpicModel, strings: list[bytes], size: torch.Size) -> dict[str, torch.Tensor]:
    """x_hat and the decoded latents of vcm's decoder (y_hat: the input of its synthesis)."""
    got: dict[str, torch.Tensor] = {}
    hook = model.g_s1.register_forward_pre_hook(lambda _, a: got.update(y_hat=a[0].clone()))
    with torch.no_grad():
        got["x_hat"] = model.decompress(strings, *size)
        got["z_hat"] = model.entropy_bottleneck.decompress([strings[1]], (size[0] // 64, size[1] // 64))
        for i, level in enumerate((model.protos1, model.protos2), 1):
            got[f"p{i}_hat"] = level.entropy_bottleneck.decompress([strings[1 + i]], (GRID, GRID))
    hook.remove()
    return got


def test_converter_infers_the_official_architecture(official: dict) -> None:
    w = official["widths"]
    out = Converter().convert(official["state_dict"])
    assert out.config == {"n": w[192], "m": w[320], "heads": 8, "windows": [8, 4],
                          "proto": [w[128], w[96], w[96]], "proto2": [w[192], w[128], w[96]],
                          "proto_synth": [w[128], w[192]], "hyper": [w[k] for k in (320, 288, 256, 224, 192)],
                          "slices": 10, "max_support": 5, "charm_hidden": [w[k] for k in (224, 176, 128, 64)],
                          "wam_units": 3, "rat": True, "head": w[32], "layout": "official",
                          "scale_levels": 64}
    model = Converter().model(out.config)
    mine = {k for k in model.state_dict() if not k.endswith(("._quantized_cdf", "._offset", "._cdf_length",
                                                             ".scale_table"))}
    assert set(out.state_dict) == mine  # every key placed, none left over
    assert not any(k.startswith(("basic_E", "basic_D")) for k in out.state_dict)


@pytest.mark.parametrize("case", CASES)
def test_official_levels_give_the_official_bytes_latents_and_image(official: dict, official_file: Path, case: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With the official 64 scale levels: every string byte-identical (so the same bit count per
    string), y's integers and z_hat, p'_hat, p_hat identical, y_hat and x_hat within 1e-5."""
    ref = official["cases"][case]
    model = _model(official_file, official_levels=True)
    assert len(model.gaussian_conditional.scale_table) == len(get_scale_table()) == 64
    table = model.gaussian_conditional._quantized_cdf.numpy().tobytes()
    assert hashlib.sha256(table).hexdigest() == official["gaussian_cdf_sha256"]
    x = _padded(ref)
    strings, symbols = _compress(model, x, monkeypatch)
    assert [len(s) for s in strings] == [len(s) for s in ref["strings"]]
    assert strings == ref["strings"] and torch.equal(symbols, ref["y_symbols"])
    got = _decode(model, strings, x.shape[-2:])
    for key in ("z_hat", "p1_hat", "p2_hat"):
        assert torch.equal(got[key], ref[key]), key
    assert (got["y_hat"] - ref["y_hat"]).abs().max() <= 1e-5
    assert (got["x_hat"] - ref["x_hat"]).abs().max() <= 1e-5


@pytest.mark.parametrize("case", CASES)
def test_vcm_levels_decode_the_same_latents(official: dict, official_file: Path, case: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """vcm's 256 scale levels (``scale_levels: 256``): the z and prototype strings stay the
    official bytes, y is coded with finer tables into other bytes that decode to the same
    integers; the forward pass's estimated bits per latent equal the official estimate."""
    ref = official["cases"][case]
    model = _model(official_file, official_levels=False)
    assert len(model.gaussian_conditional.scale_table) == 256
    x = _padded(ref)
    strings, symbols = _compress(model, x, monkeypatch)
    assert strings[1:] == ref["strings"][1:] and strings[0] != ref["strings"][0]
    assert torch.equal(symbols, ref["y_symbols"])
    got = _decode(model, strings, x.shape[-2:])
    assert (got["y_hat"] - ref["y_hat"]).abs().max() <= 1e-5
    assert (got["x_hat"] - ref["x_hat"]).abs().max() <= 1e-5
    with torch.no_grad():
        est = {k: float(-torch.log2(v).sum()) for k, v in model(x)["likelihoods"].items()}
    names = {"y": "y", "z": "z", "p1": "z_center", "p2": "z_center2"}
    for mine_key, theirs in names.items():
        assert est[mine_key] == pytest.approx(ref["forward_bits"][theirs], rel=1e-5), mine_key


def test_entropy_bottleneck_tables_are_the_forks(official: dict) -> None:
    """The fork's EntropyBottleneck(192): vcm's official-layout bottleneck rebuilds its coder
    tables exactly and codes the same bytes; compressai 1.2's own likelihood builds other tables
    for some channels (why the official layout does not use it)."""
    ref = official["bottleneck"]
    tables = ("_quantized_cdf", "_offset", "_cdf_length")
    state = {vcm_key(f"entropy_bottleneck.{k}"): v for k, v in ref["state_dict"].items()}
    state = {k.removeprefix("entropy_bottleneck."): v for k, v in state.items() if k is not None}
    built = {}
    for cls in (SignedEntropyBottleneck, EntropyBottleneck):
        eb = cls(192)
        assert set(eb.load_state_dict(state, strict=False).missing_keys) == set(tables)
        eb.update(force=True)
        built[cls] = eb
    eb = built[SignedEntropyBottleneck]
    assert all(torch.equal(getattr(eb, t), ref["state_dict"][t]) for t in tables)
    string = eb.compress(ref["z"])[0]
    assert string == ref["string"] and torch.equal(eb.decompress([string], (4, 4)), ref["z_hat"])
    plain = built[EntropyBottleneck]._quantized_cdf
    assert 0 < int((plain != ref["state_dict"]["_quantized_cdf"]).any(1).sum()) < 192


def test_the_codec_loads_official_files_and_round_trips(official: dict, official_file: Path) -> None:
    """``segpic(checkpoint=<official file>)`` (format auto, and official): encode -> bytes ->
    decode gives the official reconstruction, cropped and rounded; the container's z and
    prototype sections are the official strings; format vcm refuses the file."""
    ref = official["cases"]["120x100"]
    img = np.ascontiguousarray(ref["x"][0].permute(1, 2, 0).numpy())
    left, right, top, bottom = ref["padding"]
    want = ref["x_hat"][0, :, top:top + img.shape[0], left:left + img.shape[1]]
    want = (want.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    for fmt in ("auto", "official"):
        codec = CODECS.build("segpic", {"checkpoint": str(official_file), "format": fmt})
        bs = codec.encode(image=img)
        assert list(unpack(bs.data).sections[1:]) == ref["strings"][1:]
        assert np.array_equal(codec.decode(bs.data).image, want)
    with pytest.raises(ValueError, match="not a vcm segpic checkpoint"):
        CODECS.build("segpic", {"checkpoint": str(official_file), "format": "vcm"})


def test_convert_weights_writes_a_vcm_file_and_names_what_does_not_fit(official: dict, official_file: Path,
                                                                      tmp_path: Path, capsys) -> None:
    """The CLI writes a vcm checkpoint (same model: same bytes); a partial or foreign-keyed file
    fails with one line naming the keys."""
    out = tmp_path / "segpic_vcm.pth"
    assert main(["convert-weights", "segpic", str(official_file), str(out)]) == 0
    stored = torch.load(out, weights_only=False)
    assert stored["config"]["layout"] == "official" and stored["source"]["format"] == "official"
    x = _padded(official["cases"]["50x40"])
    assert load_segpic(out, "vcm").compress(x) == load_segpic(official_file).compress(x)
    state = dict(official["state_dict"])
    state.pop("dyn_decoder.k_ch_gen.1.weight")
    state["g_s1.9.weight"] = torch.zeros(1)
    bad = tmp_path / "partial.pth.tar"
    torch.save({"state_dict": state}, bad)
    capsys.readouterr()
    assert main(["convert-weights", "segpic", str(bad), str(tmp_path / "x.pth")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "missing keys rat_dec.cag.1.weight" in err and "unexpected keys g_s2.9.weight" in err


def test_older_files_are_the_vcm_layout_and_new_configs_the_official_one(tmp_path: Path) -> None:
    """A config without ``layout`` (every file written before the field) builds vcm's first
    layout, and such a file loads; the committed tiny weights (retrained) are the released layout."""
    assert SegpicConfig().layout == "official" and SegpicConfig.from_dict({"n": 192}).layout == "vcm"
    tiny = torch.load(REPO / "vcm" / "weights" / "segpic-tiny" / "q1.pth", weights_only=False)
    assert tiny["config"]["layout"] == "official"
    old = {k: v for k, v in tiny["config"].items() if k not in ("layout", "proto2", "proto_synth")}
    old["proto"] = old["proto"][:2]
    legacy = SegpicModel(SegpicConfig.from_dict(old))
    state = {k: v for k, v in legacy.state_dict().items() if not k.endswith(TABLES)}
    torch.save({"config": old, "state_dict": state}, tmp_path / "old.pth")  # as files were written
    model = load_segpic(tmp_path / "old.pth")
    assert model.cfg.layout == "vcm" and model.rat_enc.cag[1].out_channels == model.cfg.n // 4
    with pytest.raises(ValueError, match="layout must be one of official, vcm"):
        SegpicConfig(layout="released")
