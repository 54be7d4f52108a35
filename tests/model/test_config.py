"""Configuration loading and validation: errors name the field; round trip through TOML."""
import pytest

from nmpu_model import ConfigError, NMPUConfig, load_config, set_field


def write(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_default_file_equals_spec_defaults():
    c = load_config("examples/default.toml")
    d = NMPUConfig()
    assert (c.scale, c.offset, c.output, c.adc_bits, c.relu, c.bn_stage) == \
        (d.scale, d.offset, d.output, d.adc_bits, d.relu, d.bn_stage)
    assert (c.scale.bits, c.scale.frac, c.scale.signed) == (8, 7, False)
    assert (c.offset.bits, c.offset.frac, c.offset.signed) == (8, 1, True)


def test_fp16_fma_stages_round_trip_and_default_identity(tmp_path):
    """Set, it is written and read back; at its default it is not written, so every existing configuration
    keeps its identity (the build caches and the Verilog headers name it)."""
    c = NMPUConfig.from_dict({"rtl": {"fp16_fma_stages": 5}})
    p = tmp_path / "f.toml"
    c.save(p)
    assert "fp16_fma_stages = 5" in p.read_text() and load_config(p).rtl.fp16_fma_stages == 5
    d = NMPUConfig.from_dict({"rtl": {"fp16_fma_stages": 3}})
    assert "fp16_fma_stages" not in d.to_toml() and d.identity() == NMPUConfig().identity() != c.identity()


def test_round_trip(tmp_path):
    c = NMPUConfig.from_dict({"bn_stage": True, "bn_scale": {"bits": 6, "frac": 4, "signed": True},
                              "bn_offset": {"bits": 6, "frac": 2}, "mid": {"bits": 12, "frac": 3, "rounding": "RND_CONV"},
                              "rtl": {"lanes": 4}})
    p = tmp_path / "r.toml"
    c.save(p)
    c2 = load_config(p)
    assert c2.to_dict() == c.to_dict()


@pytest.mark.parametrize("text, msg", [
    ("[scale]\nbits = 0\nfrac = 7\n", "scale.bits must be at least 1, not 0"),
    ('[output]\nbits = 8\nfrac = 0\nrounding = "NEAREST"\n', "output.rounding must be one of"),
    ('[output]\nbits = 8\nfrac = 0\noverflow = "CLIP"\n', "output.overflow must be one of"),
    ("bn_stage = true\n", r"\[bn_scale\] is missing"),
    ("[scale]\nbits = 58\nfrac = 7\n", "exact intermediates need .* bits, more than 62"),
    ("adc_bits = 0\n", "adc_bits must be an integer >= 1"),
    ("colums = 3\n", "unknown field 'colums'"),
    ("[scale]\nbits = 8\nfrac = 7\nsigend = false\n", "unknown field scale.sigend"),
    ("[rtl]\nlanes = 3\ncolumns = 256\n", r"rtl.columns \(256\) must be a multiple of rtl.lanes \(3\)"),
    ("[scale]\nbits = 8\n", "scale.frac is missing"),
    ("[rtl]\nfp16_fma_stages = 4\n", "rtl.fp16_fma_stages must be one of 3, 5, not 4"),
    ("adc_bits = \n", "not valid TOML"),
])
def test_bad_config_names_field_and_file(tmp_path, text, msg):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match=msg) as e:
        load_config(p)
    assert str(p) in str(e.value)


def test_set_field():
    c = set_field(load_config(), "scale.bits", 6)
    assert c.scale.bits == 6 and c.scale.frac == 7
    with pytest.raises(ConfigError, match="unknown field 'scale.bitz'"):
        set_field(c, "scale.bitz", 3)


def test_plan_widths_default():
    # hand-worked: x in [-128, 127], s in [0, 255] at frac 7, o in [-128, 127] at frac 1 -> frac 7:
    # a in [-128*255 - 128*64, 127*255 + 127*64] = [-40832, 40513]
    p = load_config().plan()
    assert (p.a.lo, p.a.hi, p.a.frac) == (-40832, 40513, 7)
