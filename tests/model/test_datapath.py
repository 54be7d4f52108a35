"""apply() against the exact reference: random configurations, exhaustive ADC codes, bad input."""

import numpy as np
import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from nmpu_model import ConfigError, Fmt, NMPUConfig, apply, load_config
from nmpu_model.golden.formats import OVERFLOW_MODES, ROUNDING_MODES

from .reference import apply_ref


# Half the configurations have narrow formats (<= 12/16/20 bits, the range of real designs); in the other
# half each format is narrow or wide (up to 40 bits, fractions -12 to 40), so that the exact intermediates
# reach the loader's limit of 62 bits (MAX_INTERMEDIATE_BITS; a wider draw is refused by the loader and
# rejected here). test_widest_plans_match_reference checks plans of exactly 62 bits.
def coef_fmt(draw, wide):
    wide = wide and draw(st.booleans())
    return Fmt(draw(st.integers(1, 40 if wide else 12)), draw(st.integers(-12 if wide else -4, 40 if wide else 14)),
               draw(st.booleans()))


def q_fmt(draw, wide, max_bits=16):
    f = coef_fmt(draw, wide)
    bits = f.bits if f.bits > 12 else draw(st.integers(1, max_bits))
    # pre_truncate: none, a few bits, or more bits than most shifts drop
    k = draw(st.sampled_from([0, 0, 1, 2, 3, 4, 7, 13, 24]))
    return Fmt(bits, f.frac, f.signed, draw(st.sampled_from(ROUNDING_MODES)), draw(st.sampled_from(OVERFLOW_MODES)), k)


@st.composite
def configs(draw):
    wide = draw(st.booleans())
    bn = draw(st.booleans())
    out = q_fmt(draw, wide)
    adc_bits = draw(st.integers(1, 32 if wide and draw(st.booleans()) else 12))
    span = 24 if wide else 10
    kw = dict(adc_bits=adc_bits, scale=coef_fmt(draw, wide), offset=coef_fmt(draw, wide), output=out,
              relu=draw(st.booleans()), bn_stage=bn,
              out_frac_min=out.frac - draw(st.integers(0, span)), out_frac_max=out.frac + draw(st.integers(0, span)))
    if bn:
        kw.update(bn_scale=coef_fmt(draw, wide), bn_offset=coef_fmt(draw, wide), mid=q_fmt(draw, wide, 20))
    try:
        return NMPUConfig(**kw)
    except ConfigError:
        assume(False)


def rand_codes(rng, fmt, shape):
    # every edge code appears with high probability, the rest uniform
    edges = np.array([fmt.min, fmt.max, 0 if fmt.min <= 0 else fmt.min, min(fmt.max, fmt.min + 1)])
    r = rng.integers(fmt.min, fmt.max + 1, size=shape, dtype=np.int64)
    pick = rng.random(shape) < 0.3
    return np.where(pick, rng.choice(edges, size=shape), r)


def narrowest_signed(fmt):
    return next(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64)
                if np.iinfo(t).min <= fmt.min and fmt.max <= np.iinfo(t).max)


def check_against_reference(config, seed, code_dtype, out_frac):
    # 2 x 133 values: the compiled loop's vector body (up to 128 int16 lanes a turn) and its remainder;
    # codes as int64 (range checked in the pass) or in the narrowest dtype that holds them (nothing to check)
    rng = np.random.default_rng(seed)
    n, c = 2, 133
    x = rand_codes(rng, config.adc, (n, c)).astype(code_dtype)
    coeffs = {"scale": rand_codes(rng, config.scale, c), "offset": rand_codes(rng, config.offset, c)}
    if config.bn_stage:
        coeffs["bn_scale"] = rand_codes(rng, config.bn_scale, c)
        coeffs["bn_offset"] = rand_codes(rng, config.bn_offset, c)
    got = apply(x, config, coeffs, out_frac=out_frac)
    for i in range(n):
        for j in range(c):
            g = int(coeffs["bn_scale"][j]) if config.bn_stage else 0
            h = int(coeffs["bn_offset"][j]) if config.bn_stage else 0
            want = apply_ref(int(x[i, j]), int(coeffs["scale"][j]), int(coeffs["offset"][j]), config, out_frac, g, h)
            assert got[i, j] == want, (i, j, x[i, j])
    assert got.dtype == np.int64


@given(config=configs(), seed=st.integers(0, 2 ** 32 - 1), data=st.data())
def test_apply_matches_reference(config, seed, data):
    bits = config.plan().bits
    event(f"intermediate bits {min(bits // 8 * 8, 56)}+")        # the spread of widths (--hypothesis-show-statistics)
    code_dtype = data.draw(st.sampled_from([np.int64, narrowest_signed(config.adc)]))
    out_frac = data.draw(st.integers(config.out_frac_min, config.out_frac_max))
    check_against_reference(config, seed, code_dtype, out_frac)


# The widest plans the loader accepts (62 bits), one per place the width comes from; each is refused
# with one bit more (so 62 is the edge), and checked at the ends and the middle of its out_frac range.
WIDEST = {
    "affine product": (dict(adc_bits=24, scale=Fmt(38, 30, True), offset=Fmt(40, 10, True), relu=False,
                            output=Fmt(12, 4, True, "RND_CONV", "WRAP")),
                       dict(adc_bits=25)),
    "output left shift": (dict(relu=False, output=Fmt(8, 45, True, "RND", "SAT"), out_frac_min=0, out_frac_max=52),
                          dict(out_frac_max=53)),
    # and at out_frac -22 the output's pre-truncation drops 67 bits: more than the 64-bit word holds
    "bn product": (dict(adc_bits=12, bn_stage=True, relu=False, scale=Fmt(16, 14, False), offset=Fmt(16, 4, True),
                        mid=Fmt(30, 20, True, "RND_MIN_INF", "SAT_SYM", 9), bn_scale=Fmt(32, 28, True),
                        bn_offset=Fmt(24, 30, True), output=Fmt(16, -14, True, "RND_CONV", "SAT", 3)),
                   dict(bn_scale=Fmt(33, 28, True))),
}


@pytest.mark.parametrize("name", sorted(WIDEST))
def test_widest_plans_match_reference(name):
    kw, wider = WIDEST[name]
    config = NMPUConfig(**kw)
    assert config.plan().bits == 62
    with pytest.raises(ConfigError, match="need 63 bits, more than 62"):
        NMPUConfig(**{**kw, **wider})
    for k, out_frac in enumerate(sorted({config.out_frac_min, config.output.frac, config.out_frac_max})):
        check_against_reference(config, k, np.int64, out_frac)


@pytest.mark.parametrize("path", ["examples/default.toml", None])
def test_exhaustive_adc_codes_default(path):
    config = load_config(path)
    x = np.arange(config.adc.min, config.adc.max + 1).reshape(-1, 1).repeat(6, axis=1)
    scale = np.array([0, 1, 128, 255, 200, 77])
    offset = np.array([0, -128, 127, -1, 64, 3])
    for out_frac in (config.out_frac_min, -1, 0, 3, config.out_frac_max):
        got = apply(x, config, {"scale": scale, "offset": offset}, out_frac=out_frac)
        want = [[apply_ref(int(v), int(scale[j]), int(offset[j]), config, out_frac) for j in range(6)] for v in x[:, 0]]
        assert got.tolist() == want


def test_exhaustive_bn_stage():
    config = NMPUConfig(bn_stage=True, relu=False, bn_scale=Fmt(6, 4, True), bn_offset=Fmt(6, 2, True),
                        mid=Fmt(10, 3, True, "RND_CONV", "SAT_SYM", 2))
    x = np.arange(-128, 128).reshape(-1, 1).repeat(3, axis=1)
    co = {"scale": np.array([255, 3, 128]), "offset": np.array([-7, 100, -128]),
          "bn_scale": np.array([-32, 31, 5]), "bn_offset": np.array([-32, 17, 0])}
    got = apply(x, config, co, out_frac=2)
    want = [[apply_ref(int(v), int(co["scale"][j]), int(co["offset"][j]), config, 2,
                       int(co["bn_scale"][j]), int(co["bn_offset"][j])) for j in range(3)] for v in x[:, 0]]
    assert got.tolist() == want


def test_coeffs_out_frac_overrides_config():
    config = load_config()
    x = np.array([[100]])
    co = {"scale": np.array([128]), "offset": np.array([0])}
    assert apply(x, config, co)[0, 0] == 100
    assert apply(x, config, {**co, "out_frac": np.array(-1)})[0, 0] == 50
    assert apply(x, config, co, out_frac=-2)[0, 0] == 25


# ---- bad input: one clear ValueError naming the array, first index, value and count ----------------
GOOD = {"scale": np.array([1, 2, 3]), "offset": np.array([0, 0, 0])}


@pytest.mark.parametrize("codes, coeffs, msg", [
    (np.array([[0, 1, 128], [-129, 0, 0]]), GOOD,
     r"codes: code outside ap_fixed<8,8> range \[-128, 127\] at index \(0, 2\) \(value 128\); 2 such values"),
    (np.zeros((2, 3)), GOOD, "codes: expected integer codes, got dtype float64"),
    (np.zeros((2, 4), dtype=int), GOOD, r"scale: expected shape \(4,\) to match the 4 columns of codes, got \(3,\)"),
    (np.zeros(3, dtype=int), GOOD, "codes: expected a 2-D array"),
    (np.zeros((2, 3), dtype=int), {"scale": np.array([1, 256, -1]), "offset": GOOD["offset"]},
     r"scale: code outside ap_ufixed<8,1> range \[0, 255\] at index 1 \(value 256\); 2 such values"),
    (np.zeros((2, 3), dtype=int), {"scale": GOOD["scale"]}, "'offset' is missing"),
    (np.zeros((2, 3), dtype=int), {**GOOD, "out_frac": np.array(8)}, r"out_frac 8 is outside the configured range \[-8, 7\]"),
    (np.zeros((2, 3), dtype=int), {**GOOD, "out_frac": np.array(1.5)}, "out_frac: expected a 0-d integer"),
])
def test_bad_input_fixed(codes, coeffs, msg):
    with pytest.raises(ValueError, match=msg):
        apply(codes, load_config(), coeffs)


def test_nan_coefficient_float():
    with pytest.raises(ValueError, match=r"offset: NaN at index 2 \(value nan\); 1 such value$"):
        apply(np.zeros((1, 3), dtype=int), load_config(), {"scale": [1.0, 1.0, 1.0], "offset": [0, 0, np.nan]},
              arith="fp16")


def test_infinite_coefficient_float_propagates():
    # inf * 0 = NaN -> 0; inf * x + o = inf -> saturates (ReLU off), -inf -> min
    config = load_config().with_fields(relu=False)
    y = apply(np.array([[0, 3, -3]]), config, {"scale": [np.inf, np.inf, np.inf], "offset": [0.0, 0.0, 0.0]},
              arith="fp32")
    assert y.tolist() == [[0, 127, -128]]


def test_unknown_arith():
    with pytest.raises(ValueError, match="arith must be one of fixed, fp16, fp32"):
        apply(np.zeros((1, 3), dtype=int), load_config(), GOOD, arith="bf16")


def test_input_arrays_unchanged():
    x = np.array([[5, -5, 127]])
    co = {"scale": np.array([255, 1, 9]), "offset": np.array([1, 2, 3])}
    before = (x.copy(), {k: v.copy() for k, v in co.items()})
    apply(x, load_config(), co)
    assert (x == before[0]).all() and all((co[k] == before[1][k]).all() for k in co)


@pytest.mark.parametrize("code_dtype, coef_dtype", [(np.int8, np.uint8), (np.int16, np.int16), (np.uint64, np.int32)])
def test_narrow_and_unsigned_dtypes_give_the_same_bits(code_dtype, coef_dtype):
    config = load_config()
    rng = np.random.default_rng(3)
    lo = 0 if code_dtype == np.uint64 else -128
    x = rng.integers(lo, 128, (50, 8))
    co = {"scale": rng.integers(0, 256, 8), "offset": rng.integers(-128, 128, 8)}
    want = apply(x, config, co)
    co_n = {"scale": co["scale"].astype(np.uint8 if coef_dtype == np.uint8 else coef_dtype),
            "offset": co["offset"].astype(np.int16 if coef_dtype == np.uint8 else coef_dtype)}
    got = apply(x.astype(code_dtype), config, co_n)
    assert got.dtype == np.int64 and (got == want).all()


@given(config=configs(), seed=st.integers(0, 2 ** 32 - 1))
def test_the_networks_narrow_output_types_give_the_same_codes(config, seed):
    """A network run asks for int8 or int16 results (``code_dtype``) of its int32 ADC codes: on any configuration
    the same codes as int64, or the refusal when the type cannot hold the output format. (The kernels are
    compiled per pair of types: these are the pairs ``warm_up`` compiles, so the draws cost no compilation.)"""
    rng = np.random.default_rng(seed)
    x = rand_codes(rng, config.adc, (7, 4))
    if config.adc.bits <= 32:
        x = x.astype(np.int32)
    co = {n: rand_codes(rng, getattr(config, n), 4) for n in config.coef_names}
    want = apply(x, config, co)
    _same_codes_or_refused(x, config, co, want, (np.int8, np.int16))


def _same_codes_or_refused(x, config, co, want, dtypes):
    out = config.output
    for dt in dtypes:
        info = np.iinfo(dt)
        if info.min <= out.min and out.max <= info.max:
            got = apply(x, config, co, dtype=dt)
            assert got.dtype == dt and np.array_equal(got.astype(np.int64), want)
        else:
            with pytest.raises(ValueError, match=f"dtype: {np.dtype(dt)} cannot hold the output format"):
                apply(x, config, co, dtype=dt)


@pytest.mark.parametrize("fields", [
    {},                                                                           # signed 8-bit output
    {"output": Fmt(8, 0, False), "relu": True},                                   # unsigned 8-bit
    {"output": Fmt(16, 4, True, "RND_CONV", "SAT"), "out_frac_min": 0, "out_frac_max": 8},   # 16 bits
    "examples/bn_stage.toml",                                                     # the BN stage
])
def test_every_integer_output_type(fields):
    """Every integer result type on a few configurations (a draw per type would compile the kernels per draw)."""
    config = load_config(fields) if isinstance(fields, str) else NMPUConfig(**fields)
    rng = np.random.default_rng(11)
    x = rand_codes(rng, config.adc, (64, 6))
    co = {n: rand_codes(rng, getattr(config, n), 6) for n in config.coef_names}
    want = apply(x, config, co)
    _same_codes_or_refused(x, config, co, want, (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32))


def test_non_integer_dtype_refused():
    with pytest.raises(ValueError, match="dtype: expected an integer dtype, not float32"):
        apply(np.zeros((1, 3), dtype=int), load_config(), GOOD, dtype=np.float32)


@pytest.mark.parametrize("arith", ["fixed", "fp16", "fp32"])
def test_bool_huge_and_empty_codes(arith):
    """bool is not a code; a uint64 code above int64's range is named, not wrapped; no samples is no output."""
    cfg = load_config()
    co = {"scale": np.array([3, 200]), "offset": np.array([-1, 5])}
    if arith != "fixed":
        co = {k: v.astype(float) / 8 for k, v in co.items()}
    with pytest.raises(ValueError, match="^codes: expected integer codes, got dtype bool$"):
        apply(np.array([[True, False]]), cfg, co, arith)
    huge = np.array([[3, 2 ** 63 + 5], [2 ** 64 - 1, 0]], np.uint64)
    with pytest.raises(ValueError, match=r"^codes: code too large at index \(0, 1\) \(value 9223372036854775813\); "
                                         r"2 such values$"):
        apply(huge, cfg, co, arith)
    for dt in (np.int64, np.int8, np.uint64):
        y = apply(np.zeros((0, 2), dt), cfg, co, arith)
        assert y.shape == (0, 2) and y.dtype == np.int64


@pytest.mark.parametrize("arith", ["fp16", "fp32"])
def test_float_coefficients_of_any_real_dtype_and_nothing_else(arith):
    """Real coefficients may be any float or integer dtype (the same values give the same codes); complex,
    text, object and bool arrays are refused naming the array and its dtype."""
    cfg = load_config().with_fields(relu=False)
    x = np.array([[5, -7, 100]])
    ref = apply(x, cfg, {"scale": [0.5, 1.0, 2.0], "offset": [1.0, -3.0, 0.0]}, arith)
    for dt in (np.float64, np.float32, np.float16, np.int64, np.int8):
        co = {"scale": np.array([0.5, 1.0, 2.0]).astype(dt) if dt in (np.float64, np.float32, np.float16)
              else np.array([0, 1, 2], dt), "offset": np.array([1, -3, 0], dt)}
        got = apply(x, cfg, co, arith)
        if co["scale"].dtype.kind == "f":
            assert got.tolist() == ref.tolist(), dt
        else:   # integer coefficients 0, 1, 2: the exact products
            assert got.tolist() == [[1, -10, 127]], dt
    for bad in (np.array([1 + 2j, 1, 1]), np.array(["1", "2", "3"]), np.array([1.0, None, 2.0], dtype=object),
                np.array([True, False, True])):
        with pytest.raises(ValueError, match=f"^offset: expected numbers, got dtype {bad.dtype}$"):
            apply(x, cfg, {"scale": [1.0, 1.0, 1.0], "offset": bad}, arith)


def test_bad_codes_and_coefficients_are_refused_naming_the_first_bad_one():
    """Each refusal by hand: the array, the format's range, the index and value of the first bad entry, the count.
    Codes only one side out of range, a code at a bound (in range), a narrow ADC given wider integer types."""
    cfg = NMPUConfig()
    co = {"scale": np.array([100, 100]), "offset": np.array([0, 0])}

    def refused(codes, config=cfg, coeffs=None, **kw):
        n = np.asarray(codes).shape[-1]
        with pytest.raises(ValueError) as e:
            apply(codes, config, coeffs or {"scale": np.full(n, 100), "offset": np.zeros(n, np.int64)}, **kw)
        return str(e.value)

    assert refused(np.array([[True, False]])) == "codes: expected integer codes, got dtype bool"
    assert refused(np.array([[1.0, 2.0]])) == "codes: expected integer codes, got dtype float64"
    big = np.array([[2 ** 63 - 1, 0, 2 ** 63, 2 ** 64 - 1]], dtype=np.uint64)
    assert refused(big) == ("codes: code too large at index (0, 2) (value 9223372036854775808); 2 such values")
    assert refused(big[:, :2]) == ("codes: code outside ap_fixed<8,8> range [-128, 127] at index (0, 0) "
                                   "(value 9223372036854775807); 1 such value")
    assert refused(np.array([[-128, 127, 128, -129, 300]])) == (
        "codes: code outside ap_fixed<8,8> range [-128, 127] at index (0, 2) (value 128); 3 such values")
    for name, vals, fmt, bad_at in (("scale", [0, 255, 256], "ap_ufixed<8,1> range [0, 255]", 2),
                                    ("scale", [0, -1, 255], "ap_ufixed<8,1> range [0, 255]", 1),
                                    ("offset", [-128, 127, 128], "ap_fixed<8,7> range [-128, 127]", 2)):
        c = {"scale": np.array([1, 1, 1]), "offset": np.array([0, 0, 0]), name: np.array(vals)}
        assert refused(np.zeros((1, 3), np.int64), coeffs=c) == (
            f"{name}: code outside {fmt} at index {bad_at} (value {vals[bad_at]}); 1 such value")
    c4 = NMPUConfig(adc_bits=4)
    for dtype, codes, msg in ((np.uint8, [[7, 8]], "at index (0, 1) (value 8)"),
                              (np.int8, [[-9, 7]], "at index (0, 0) (value -9)"),
                              (np.int16, [[-8, 300]], "at index (0, 1) (value 300)")):
        assert refused(np.array(codes, dtype), c4) == f"codes: code outside ap_fixed<4,4> range [-8, 7] {msg}; 1 such value"
    assert apply(np.array([[-8, 7]], np.int8), c4, co).tolist() == [[0, 5]]   # both bounds in range: 100/128*7 = 5.47
    # the fixed-point unit's coefficients are codes: real values are refused, not rounded or cast
    for dtype in (np.float64, bool):
        c = {"scale": np.array([1, 0], dtype), "offset": np.zeros(2, np.int64)}
        assert refused(np.zeros((1, 2), np.int64), coeffs=c) == f"scale: expected integer codes, got dtype {np.dtype(dtype)}"
    bn = NMPUConfig(bn_stage=True, bn_scale=Fmt(8, 4), bn_offset=Fmt(8, 4), mid=Fmt(16, 8))
    assert refused(np.zeros((1, 2), np.int64), bn) == "coefficients: 'bn_scale' is missing (bn_stage = true)"
    assert refused(np.zeros((1, 2), np.int64), dtype="nope") == "dtype: 'nope' is not a numpy dtype"


def test_one_two_and_no_bit_requantizations_every_mode_every_code():
    """The output requantization at a right shift of 0, 1 and 2 bits (out_frac 7, 6, 5 with the default 7-bit
    scale), each rounding mode, signed and unsigned outputs with and without ReLU, every 8-bit code: against the
    exact reference. (The 1-bit shift is the smallest with a rounding constant; unsigned outputs have no
    negative-value term, so a ties-to-even rule is their only term.)"""
    x = np.arange(-128, 128).reshape(-1, 1).repeat(4, axis=1)
    s, o = np.array([1, 3, 255, 128]), np.array([-128, 1, 127, 0])
    for rounding in ROUNDING_MODES:
        for signed, relu in ((True, False), (False, True), (True, True)):
            cfg = NMPUConfig(relu=relu, output=Fmt(8, 0, signed, rounding, "SAT"))
            for out_frac in (7, 6, 5):
                got = apply(x, cfg, {"scale": s, "offset": o}, out_frac=out_frac)
                want = [[apply_ref(int(v), int(s[j]), int(o[j]), cfg, out_frac) for j in range(4)] for v in x[:, 0]]
                assert got.tolist() == want, (rounding, signed, relu, out_frac)
