"""Reading official checkpoints: unwrapping, key checks, format selection and the CLI's errors.
The per-codec equality with the official code is in tests/codecs/test_*_official.py."""

from pathlib import Path

import pytest
import torch

from vcm.cli import main
from vcm.codecs.official import check_state, official_state, read_codec_weights


def test_official_state_unwraps_training_files_and_data_parallel_prefixes() -> None:
    w = torch.ones(2)
    assert official_state({"epoch": 3, "state_dict": {"module.g_a.0.weight": w}}) == {"g_a.0.weight": w}
    assert official_state({"model": {"a": w}, "optimizer": {}}) == {"a": w}
    assert official_state({"parameters": {"a": w}, "epoch": 9}) == {"a": w}
    assert official_state({"a": w, "lr": 0.1}) == {"a": w}
    with pytest.raises(ValueError, match="no tensors"):
        official_state({"epoch": 3})


def test_check_state_names_missing_unexpected_and_misshapen_keys_in_one_line() -> None:
    model = {"a.weight": torch.zeros(3, 2), "b.weight": torch.zeros(4), "c._offset": torch.zeros(1)}
    check_state(model, {"a.weight": torch.ones(3, 2), "b.weight": torch.ones(4)}, "f.pth", "SegPIC",
                skip=("._offset",))
    with pytest.raises(ValueError) as e:
        check_state(model, {"a.weight": torch.ones(2, 2), "x": torch.ones(1)}, "f.pth", "SegPIC", skip=("._offset",))
    msg = str(e.value)
    assert "\n" not in msg and "missing keys b.weight" in msg and "unexpected keys x" in msg
    assert "wrong shapes a.weight (2, 2) (model (3, 2))" in msg
    many = {f"k{i}": torch.zeros(1) for i in range(9)}
    with pytest.raises(ValueError, match=r"missing keys k0, k1, k2, k3 \(\+5 more\)"):
        check_state(many, {}, "f.pth", "x")


def test_format_selects_how_a_file_is_read() -> None:
    vcm_file = {"config": {"n": 1}, "state_dict": {"a": torch.zeros(1)}}
    assert read_codec_weights(vcm_file, "segpic", "f.pth")[0] == {"n": 1}
    with pytest.raises(ValueError, match="not a vcm segpic checkpoint.*format: official"):
        read_codec_weights({"a": torch.zeros(1)}, "segpic", "f.pth", "vcm")
    with pytest.raises(ValueError, match="is a vcm segpic checkpoint, not an official one"):
        read_codec_weights(vcm_file, "segpic", "f.pth", "official")
    with pytest.raises(ValueError, match="format must be one of auto, vcm, official"):
        read_codec_weights(vcm_file, "segpic", "f.pth", "onnx")
    with pytest.raises(ValueError, match="neither a vcm segpic checkpoint .* nor an official one"):
        read_codec_weights({"foo.weight": torch.zeros(1)}, "segpic", "f.pth")
    stub = {"dyn_enc_hyper.0.weight": torch.zeros(1), "g_ab2.0.weight": torch.zeros(1)}  # SegPIC's keys, no more
    with pytest.raises(ValueError, match="official segpic checkpoint (lacks|is incomplete)"):
        read_codec_weights(stub, "segpic", "f.pth")
    with pytest.raises(ValueError, match="reads no official emic checkpoints"):
        read_codec_weights({"foo.weight": torch.zeros(1)}, "emic", "f.pth")


def test_convert_weights_cli_refuses_foreign_files_with_exit_code_2(tmp_path: Path, capsys) -> None:
    src = tmp_path / "other.pth"
    torch.save({"state_dict": {"encoder.conv.weight": torch.zeros(2, 2)}}, src)
    assert main(["convert-weights", "segpic", str(src), str(tmp_path / "out.pth")]) == 2
    err = capsys.readouterr().err
    assert "neither a vcm segpic checkpoint" in err and "encoder.conv.weight" in err and "Traceback" not in err
    assert not (tmp_path / "out.pth").exists()
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    assert main(["convert-weights", "mcm", str(tmp_path / "junk.pth"), str(tmp_path / "out.pth")]) == 2
    assert "cannot be read as a torch file" in capsys.readouterr().err


def test_convert_weights_overrides_set_what_no_shape_shows_and_are_checked(tmp_path: Path, capsys) -> None:
    src = Path(__file__).parent / "fixtures" / "official" / "gitssic" / "released.pt"
    out = tmp_path / "one_z_per_group.pth"
    assert main(["convert-weights", "gitssic", str(src), str(out), "layout=official"]) == 0
    assert torch.load(out, weights_only=True)["config"]["layout"] == "official"
    assert main(["convert-weights", "gitssic", str(src), str(tmp_path / "x.pth"), "layers=3"]) == 2
    assert "gitssic config has no such key" in capsys.readouterr().err
    assert main(["convert-weights", "gitssic", str(src), str(tmp_path / "x.pth"), "slices=3"]) == 2
    assert "config does not build a model: latent channels 16 do not split into 3" in capsys.readouterr().err
    assert main(["convert-weights", "gitssic", str(src), str(tmp_path / "x.pth"), "slices=2"]) == 2
    err = capsys.readouterr().err
    assert "does not fit this gitssic model: unexpected keys" in err and "wrong shapes charm.mean_nets" in err
    assert not (tmp_path / "x.pth").exists()


def test_streams_of_another_scale_table_are_told_apart() -> None:
    """The same weights with the official 64-level table and vcm's 256-level one code y
    differently, so their fingerprints differ and a stream of one is refused by the other."""
    from vcm.codecs.checkpoint import fingerprint
    from vcm.codecs.gitssic.codec import load_gitssic

    src = Path(__file__).parent / "fixtures" / "official" / "gitssic" / "one_group.pt"
    official, vcm_table = load_gitssic(src), load_gitssic(src, scale_levels=256)
    assert official.cfg.scale_levels == 64 and fingerprint(official) != fingerprint(vcm_table)
    assert fingerprint(load_gitssic(src)) == fingerprint(official)
