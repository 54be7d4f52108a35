"""amaranth.sim tests of the whole NMPU against ``nmpu_model.apply``: small, fast, before any Verilog.

The cocotb/Verilator suite (tests/cosim) runs the long random streams; these check the wiring,
the stall behaviour and the constructor errors in seconds.
"""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from nmpu_model import Fmt, NMPUConfig, RTLParams, apply
from rtl.nmpu import NMPU, latency
from unit_sim import stream_through


def simulate(config: NMPUConfig, coeffs: dict[str, np.ndarray], out_frac: int, codes: np.ndarray,
             group: np.ndarray, seed: int, p_valid: float = 0.7, p_ready: float = 0.7) -> tuple[list, int]:
    """Write coefficients and out_frac, stream beats with random gaps/stalls; return output beats and latency."""
    dut = NMPU(config)
    outs = stream_through(dut, coeffs, out_frac, codes, group, seed, p_valid, p_ready)
    return outs, dut.LATENCY


def random_case(config: NMPUConfig, n: int, seed: int):
    rng = np.random.default_rng(seed)
    C, L = config.rtl.columns, config.rtl.lanes
    names = ["scale", "offset"] + (["bn_scale", "bn_offset"] if config.bn_stage else [])
    coeffs = {nm: rng.integers(getattr(config, nm).min, getattr(config, nm).max + 1, C) for nm in names}
    codes = rng.integers(config.adc.min, config.adc.max + 1, (n, L))
    group = rng.integers(0, C // L, n)
    return coeffs, codes, group


def expected(config: NMPUConfig, coeffs, codes, group, out_frac: int) -> np.ndarray:
    L = config.rtl.lanes
    cols = (group[:, None] * L + np.arange(L)).reshape(-1)
    flat = {k: v[cols] for k, v in coeffs.items()}
    return apply(codes.reshape(1, -1), config, flat, out_frac=out_frac).reshape(codes.shape)


CONFIGS = {
    "default-small": NMPUConfig(rtl=RTLParams(lanes=1, columns=4)),
    "bn-lanes3": NMPUConfig(bn_stage=True, bn_scale=Fmt(6, 4, True), bn_offset=Fmt(6, 1, True),
                            mid=Fmt(9, 3, False, "RND_CONV", "SAT_SYM", 2),
                            output=Fmt(5, 1, True, "RND_ZERO", "WRAP", 1), out_frac_min=-2, out_frac_max=5,
                            relu=False, rtl=RTLParams(lanes=3, columns=6)),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_nmpu_matches_model_under_stalls(name: str) -> None:
    config = CONFIGS[name]
    coeffs, codes, group = random_case(config, 150, seed=1)
    for out_frac in (config.out_frac_min, config.output.frac, config.out_frac_max):
        outs, _ = simulate(config, coeffs, out_frac, codes, group, seed=out_frac + 10)
        assert np.array_equal(np.array(outs), expected(config, coeffs, codes, group, out_frac)), out_frac


def test_latency_and_ii_one() -> None:
    """With valid and ready always high, one beat leaves per cycle after LATENCY cycles."""
    config = CONFIGS["default-small"]
    dut = NMPU(config)
    assert dut.LATENCY == latency(config) == 2
    seen: list[int] = []

    async def bench(ctx):
        ctx.set(dut.o_stream.ready, 1)
        ctx.set(dut.i_stream.valid, 1)
        for cycle in range(20):
            _, _, o_ok = await ctx.tick().sample(dut.o_stream.valid)
            if o_ok:
                seen.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # the beat accepted at edge 0 is valid after LATENCY edges, i.e. sampled at edge LATENCY
    assert seen == list(range(dut.LATENCY, 20))


def test_constructor_checks() -> None:
    with pytest.raises(TypeError, match="config must be an NMPUConfig"):
        NMPU({"adc_bits": 8})
    with pytest.raises(ValueError, match="fault must be one of"):
        NMPU(NMPUConfig(), fault="carry")


def random_config(rng: np.random.Generator) -> NMPUConfig:
    """A random configuration NMPUConfig accepts: widths, fracs (negative too), signedness, modes, lanes, BN."""
    from nmpu_model import ConfigError, OVERFLOW_MODES, ROUNDING_MODES

    def fmt(q: bool) -> Fmt:
        bits = int(rng.integers(1, 11))
        kw = dict(rounding=str(rng.choice(ROUNDING_MODES)), overflow=str(rng.choice(OVERFLOW_MODES)),
                  pre_truncate=int(rng.choice([0, 0, 1, 2, 3]))) if q else {}
        return Fmt(bits, int(rng.integers(-3, 10)), bool(rng.random() < 0.6), **kw)

    while True:
        try:
            lanes = int(rng.integers(1, 5))
            bn = bool(rng.random() < 0.5)
            out = fmt(True)
            lo = out.frac - int(rng.integers(0, 6))
            return NMPUConfig(adc_bits=int(rng.integers(1, 10)), scale=fmt(False), offset=fmt(False), output=out,
                              out_frac_min=lo, out_frac_max=out.frac + int(rng.integers(0, 6)),
                              relu=bool(rng.random() < 0.5), bn_stage=bn,
                              bn_scale=fmt(False) if bn else None, bn_offset=fmt(False) if bn else None,
                              mid=fmt(True) if bn else None,
                              rtl=RTLParams(lanes=lanes, columns=lanes * int(rng.integers(1, 6))))
        except ConfigError:
            continue


@pytest.mark.parametrize("seed", range(12))
def test_random_configs_match_model(seed: int) -> None:
    """Configurations nobody wrote by hand: the whole unit, every out_frac edge, against nmpu_model.apply."""
    config = random_config(np.random.default_rng(seed))
    coeffs, codes, group = random_case(config, 60, seed=seed)
    for out_frac in (config.out_frac_min, config.out_frac_max):
        outs, _ = simulate(config, coeffs, out_frac, codes, group, seed=seed)
        assert np.array_equal(np.array(outs), expected(config, coeffs, codes, group, out_frac)), (config, out_frac)
