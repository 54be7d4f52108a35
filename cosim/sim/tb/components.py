"""The testbench components both units' cocotb tests are made of: driver, monitor, configuration writer, scoreboard.

Structure (after cocotb's ``examples/matrix_multiplier``, made cycle-based for speed): one clock loop
calls, every cycle, ``drive()`` on each component (at the falling edge: set the inputs for the next
rising edge), then ``sample()`` (in the ReadOnly phase of the same time step: exactly the values the
rising edge will see, so every handshake is observed, never inferred from the driver's intention).

- :class:`StreamDriver` drives ``i_stream`` from a queue, with random valid gaps; the payload is held
  until accepted (the stream rules).
- :class:`StreamMonitor` drives ``o_stream.ready`` with random stalls, samples every accepted output
  beat into a queue, and checks that a stalled beat stays valid and unchanged.
- :class:`ConfigWriter` drives the ``coef`` and ``out_frac`` write ports from a queue and keeps a
  shadow of what the unit holds, updated at the edge that writes it.
- :class:`Scoreboard` predicts each accepted input beat with the model (using the shadow state
  before the write of the same edge, as the unit documents) and compares every output beat.

All of them take an :class:`rtl.nmpu.Interface` and the model as a function, so the FP16 baseline
unit (same ports, wider ``coef.data``) reuses them with ``arith="fp16"``.

The cycle loop is written by hand (one ``drive``/``sample`` per component and cycle, triggers built
once) instead of one coroutine per component: cocotb's scheduler would cost several times the
simulated cycles per second, and the bulk C++ harness (:mod:`cosim.sim.bulk`) runs the same cycle.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

import numpy as np

# model(codes (n, L), coefs {name: (n, L) codes}, out_frac) -> expected output codes (n, L)
Model = Callable[[np.ndarray, dict[str, np.ndarray], int], np.ndarray]


def to_signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


class Harness:
    """Handles of one DUT with the NMPU interface and the clock loop that runs its components."""

    def __init__(self, dut: Any, iface: Any) -> None:
        self.dut, self.iface = dut, iface
        self.components: list[Any] = []
        self.cycle = 0
        self._triggers: tuple | None = None

    async def start(self) -> None:
        """Start the clock, every input port idle, two cycles of reset; ends at a falling edge."""
        import cocotb
        from cocotb.clock import Clock
        from cocotb.triggers import FallingEdge

        d = self.dut
        cocotb.start_soon(Clock(d.clk, 10, unit="ns").start())
        for sig in (d.i_stream__valid, d.o_stream__ready, d.coef__en, d.out_frac__en):
            sig.value = 0
        d.rst.value = 1
        await FallingEdge(d.clk)
        await FallingEdge(d.clk)
        d.rst.value = 0

    async def step(self) -> None:
        """One clock cycle: drive at the falling edge, sample what the next rising edge will see."""
        if self._triggers is None:           # built once: this loop runs every simulated cycle
            from cocotb.triggers import FallingEdge, ReadOnly
            self._triggers = (ReadOnly(), FallingEdge(self.dut.clk))
        read_only, falling = self._triggers
        for c in self.components:
            c.drive()
        await read_only
        for c in self.components:
            c.sample()
        await falling
        self.cycle += 1


class StreamDriver:
    """Drives ``i_stream``: beats ``(codes tuple, group)`` from a queue, valid with probability ``p_valid``."""

    def __init__(self, h: Harness, rng: np.random.Generator, p_valid: float = 0.8) -> None:
        self.h, self.rng, self.p_valid = h, rng, p_valid
        self.queue: deque = deque()
        self.current: Any = None
        self.valid = False
        self.paused = False
        self.on_accept: Callable[[Any], None] = lambda beat: None
        itf = h.iface
        self._mask, self._bits, self._lanes = (1 << itf.adc_bits) - 1, itf.adc_bits, itf.lanes

    def pack(self, beat: Any) -> int:
        codes, group = beat
        word = 0
        for j, c in enumerate(codes):
            word |= (int(c) & self._mask) << (j * self._bits)
        return word | (int(group) << (self._lanes * self._bits))

    def drive(self) -> None:
        d = self.h.dut
        if self.current is None and self.queue and not self.paused:
            self.current = self.queue.popleft()
            d.i_stream__payload.value = self.pack(self.current)
        # a beat once offered stays offered until taken (valid never waits for ready)
        self.valid = self.current is not None and not self.paused and (self.valid or self.rng.random() < self.p_valid)
        d.i_stream__valid.value = int(self.valid)

    def sample(self) -> None:
        d = self.h.dut
        if self.valid and int(d.i_stream__ready.value):
            self.on_accept(self.current)
            self.current, self.valid = None, False

    def drop_offer(self) -> None:
        """Withdraw the valid (only allowed across a reset) and keep the beat for later."""
        self.valid = False


class StreamMonitor:
    """Drives ``o_stream.ready`` (random stalls) and samples accepted output beats into ``beats``."""

    def __init__(self, h: Harness, rng: np.random.Generator, p_ready: float = 0.7) -> None:
        self.h, self.rng, self.p_ready = h, rng, p_ready
        self.beats: deque = deque()
        self.ready = False
        self.paused = False
        self.protocol_errors: list[str] = []
        self._held: int | None = None
        self.in_reset = False
        itf = h.iface
        self._bits, self._lanes, self._signed = itf.out_bits, itf.lanes, itf.out_signed

    def unpack(self, word: int) -> list[int]:
        m = (1 << self._bits) - 1
        vals = [(word >> (j * self._bits)) & m for j in range(self._lanes)]
        return [to_signed(v, self._bits) for v in vals] if self._signed else vals

    def drive(self) -> None:
        self.ready = not self.paused and self.rng.random() < self.p_ready
        self.h.dut.o_stream__ready.value = int(self.ready)

    def sample(self) -> None:
        d = self.h.dut
        valid = int(d.o_stream__valid.value)
        if self.in_reset:                    # a reset may withdraw a stalled beat
            self._held = None
            return
        if self._held is not None:
            # the stream rules: a valid beat not taken stays valid with the same payload
            if not valid or int(d.o_stream__payload.value) != self._held:
                self.protocol_errors.append(f"cycle {self.h.cycle}: o_stream beat changed or withdrawn while stalled")
            self._held = None
        if not valid:
            return
        word = int(d.o_stream__payload.value)
        if self.ready:
            self.beats.append((self.h.cycle, self.unpack(word)))
        else:
            self._held = word


class ConfigWriter:
    """Drives the ``coef`` and ``out_frac`` write ports from a queue; keeps the shadow of the unit's state."""

    def __init__(self, h: Harness, coef_names: list[str], out_frac_init: int) -> None:
        self.h = h
        self.queue: deque = deque()          # ("coef", sel, addr, raw) or ("frac", value)
        self.shadow: dict[int, np.ndarray] = {s: np.zeros(h.iface.columns, dtype=np.int64)
                                              for s in range(len(coef_names))}
        self.written: dict[int, np.ndarray] = {s: np.zeros(h.iface.columns, dtype=bool) for s in self.shadow}
        self.out_frac = out_frac_init
        self._pending: list[tuple] = []
        self._frac_bits = h.iface.out_frac_bits

    def drive(self) -> None:
        d = self.h.dut
        self._pending = []
        coef = next((w for w in self.queue if w[0] == "coef"), None)
        frac = next((w for w in self.queue if w[0] == "frac"), None)
        d.coef__en.value = int(coef is not None)
        if coef is not None:
            _, sel, addr, raw, value = coef
            d.coef__sel.value, d.coef__addr.value, d.coef__data.value = sel, addr, raw
            self.queue.remove(coef)
            self._pending.append(coef)
        d.out_frac__en.value = int(frac is not None)
        if frac is not None:
            d.out_frac__data.value = frac[1] & ((1 << self._frac_bits) - 1)
            self.queue.remove(frac)
            self._pending.append(frac)

    def sample(self) -> None:
        pass                                 # writes land in commit(), after the scoreboard sampled

    def commit(self) -> None:
        itf = self.h.iface
        for w in self._pending:
            if w[0] == "coef" and w[1] in self.shadow and w[2] < itf.columns:
                self.shadow[w[1]][w[2]] = w[4]
                self.written[w[1]][w[2]] = True
            elif w[0] == "frac" and itf.out_frac_min <= w[1] <= itf.out_frac_max:
                self.out_frac = w[1]         # out-of-range values are ignored by the unit
        self._pending = []

    @property
    def idle(self) -> bool:
        return not self.queue


class Scoreboard:
    """Predicts accepted input beats with ``model`` and compares every output beat, in order."""

    def __init__(self, h: Harness, writer: ConfigWriter, model: Model, coef_names: list[str]) -> None:
        self.h, self.writer, self.model, self.names = h, writer, model, coef_names
        self.expected: deque = deque()
        self.vectors = 0
        self.mismatches = 0
        self.first_mismatch: dict | None = None
        self.latency_min: int | None = None     # fewest cycles from acceptance to output: the latency
        self.run, self.longest_run = 0, 0       # back-to-back output beats: II 1 when long
        self._last_out = -2

    def accept(self, beat: Any) -> None:
        """Called by the driver when the unit accepts a beat: predict it with the state before this edge."""
        codes, group = beat
        L = self.h.iface.lanes
        cols = group * L + np.arange(L)
        for s in range(len(self.names)):
            if not self.writer.written[s][cols].all():
                raise RuntimeError(f"testbench bug: beat for group {group} before its coefficients were written")
        coefs = {n: self.writer.shadow[s][cols][None, :] for s, n in enumerate(self.names)}
        want = self.model(np.asarray(codes, dtype=np.int64)[None, :], coefs, self.writer.out_frac)[0]
        self.expected.append((codes, group, self.writer.out_frac, [int(v) for v in want], self.h.cycle))

    def check(self, beats: deque) -> None:
        while beats:
            cycle, got = beats.popleft()
            if not self.expected:
                self._fail({"cycle": cycle, "error": "output beat with no input beat in flight", "got": got})
                continue
            codes, group, out_frac, want, in_cycle = self.expected.popleft()
            self.vectors += 1
            lat = cycle - in_cycle
            self.latency_min = lat if self.latency_min is None else min(self.latency_min, lat)
            self.run = self.run + 1 if cycle == self._last_out + 1 else 1
            self.longest_run, self._last_out = max(self.longest_run, self.run), cycle
            if got != want:
                self._fail({"cycle": cycle, "accepted_cycle": in_cycle, "group": int(group),
                            "codes": [int(c) for c in codes], "out_frac": out_frac, "got": got, "expected": want,
                            "coefficients": {n: self.writer.shadow[s][group * len(codes) + np.arange(len(codes))].tolist()
                                             for s, n in enumerate(self.names)}})

    def _fail(self, info: dict) -> None:
        self.mismatches += 1
        if self.first_mismatch is None:
            self.first_mismatch = info


def edge_biased(rng: np.random.Generator, lo: int, hi: int, size: int, p_edge: float = 0.3) -> np.ndarray:
    """Uniform integers in ``[lo, hi]``, with probability ``p_edge`` an edge: lo, lo+1, -1, 0, 1, hi-1, hi."""
    edges = np.array(sorted({v for v in (lo, lo + 1, -1, 0, 1, hi - 1, hi) if lo <= v <= hi}), dtype=np.int64)
    vals = rng.integers(lo, hi + 1, size, dtype=np.int64)
    pick = rng.random(size) < p_edge
    vals[pick] = rng.choice(edges, int(pick.sum()))
    return vals


class StreamTestbench:
    """The random-vector testbench of a unit with the NMPU's interface, wired in one place.

    As in cocotb's ``examples/matrix_multiplier``: the driver hands every accepted beat to the
    scoreboard, which predicts it with ``model``; the monitor's beats go to the scoreboard's check
    each cycle; the writer's shadow is the state the model sees. The phases of a test are methods:
    :meth:`reset`, :meth:`load_layer`, :meth:`stream`, :meth:`result`.
    """

    def __init__(self, dut: Any, iface: Any, model: Model, coef_names: list[str], out_frac_init: int,
                 latency: int, rng: np.random.Generator, p_valid: float = 0.8, p_ready: float = 0.7) -> None:
        self.h = Harness(dut, iface)
        self.rng = rng
        self.driver = StreamDriver(self.h, rng, p_valid)
        self.monitor = StreamMonitor(self.h, rng, p_ready)
        self.writer = ConfigWriter(self.h, coef_names, out_frac_init)
        self.scoreboard = Scoreboard(self.h, self.writer, model, coef_names)
        self.driver.on_accept = self.scoreboard.accept
        self.h.components = [self.writer, self.driver, self.monitor]
        self.out_frac_init = out_frac_init
        self.budget = 200 * latency + 50          # cycles without an output beat that mean a deadlock
        self.resets = 0
        self.layers = 0
        self._t0 = time.perf_counter()

    async def cycle(self) -> None:
        """One clock cycle; register writes land, output beats are checked."""
        await self.h.step()
        self.writer.commit()
        self.scoreboard.check(self.monitor.beats)

    async def reset(self) -> None:
        """The first reset (clock started); later calls reset mid-stream: the beats in flight are lost,
        ``out_frac`` returns to its reset value, the coefficient memory keeps its contents."""
        if self.h.cycle == 0 and not self.resets:
            await self.h.start()
            self._t0 = time.perf_counter()
            return
        drv, mon, sb = self.driver, self.monitor, self.scoreboard
        drv.paused = mon.paused = mon.in_reset = True
        drv.drop_offer()
        self.writer.queue.clear()             # no register writes while in reset
        self.h.dut.rst.value = 1
        await self.h.step()
        await self.h.step()
        self.h.dut.rst.value = 0
        self.writer.out_frac = self.out_frac_init
        sb.check(mon.beats)                   # (none: ready was low during the reset)
        sb.expected.clear()
        drv.paused = mon.paused = mon.in_reset = False
        self.resets += 1

    async def load_layer(self, writes: list[tuple]) -> None:
        """Write coefficients and ``out_frac`` (``("coef", sel, addr, raw, value)`` / ``("frac", v)``) and wait until done."""
        wr = self.writer
        wr.queue.extend(writes)
        limit = 10 * len(wr.queue) + 10
        for _ in range(limit):
            if wr.idle:
                self.layers += 1
                return
            await self.cycle()
        raise RuntimeError(f"timeout after {limit} cycles waiting for coefficient writes (cycle {self.h.cycle}); "
                           f"{len(self.scoreboard.expected)} beats in flight, {len(self.driver.queue)} queued")

    async def stream(self, beats: list[tuple], each_cycle: Callable[[], Any] | None = None) -> None:
        """Offer ``beats`` (``(codes, group)``) and run until every one has left the unit and been checked.

        ``each_cycle()`` runs before every cycle (mid-stream rewrites); an awaitable it returns (a
        reset) is awaited instead of that cycle. A unit that gives no output beat for ``budget``
        cycles with beats in flight is a deadlock (``RuntimeError``), not a hang.
        """
        drv, sb = self.driver, self.scoreboard
        drv.queue.extend(beats)
        stalled_for = 0
        while drv.queue or drv.current is not None or sb.expected:
            instead = each_cycle() if each_cycle is not None else None
            if instead is not None:
                await instead
                continue
            before = sb.vectors
            await self.cycle()
            stalled_for = 0 if sb.vectors != before or not sb.expected else stalled_for + 1
            if stalled_for > self.budget:
                raise RuntimeError(f"deadlock: no output beat for {self.budget} cycles with {len(sb.expected)} in "
                                   f"flight (cycle {self.h.cycle})")

    def result(self) -> dict:
        """Counts, the first mismatch and the measured timing, as the host reads them."""
        sb, mon, h = self.scoreboard, self.monitor, self.h
        elapsed = time.perf_counter() - self._t0
        return {"vectors": sb.vectors, "codes": sb.vectors * h.iface.lanes,
                "mismatches": sb.mismatches + len(mon.protocol_errors), "protocol_errors": mon.protocol_errors[:10],
                "cycles": h.cycle, "layers": self.layers, "resets": self.resets, "first_mismatch": sb.first_mismatch,
                "latency_min": sb.latency_min, "longest_back_to_back": sb.longest_run, "wall_s": round(elapsed, 3),
                "cycles_per_s": round(h.cycle / elapsed, 1) if elapsed else None}


async def run_stream_test(dut: Any, *, iface: Any, model: Model, coef_names: list[str],
                          coef_values: Callable[[np.random.Generator, int, int], tuple[np.ndarray, np.ndarray]],
                          vectors: int, seed: int, out_frac_init: int, latency: int,
                          p_valid: float = 0.8, p_ready: float = 0.7, reset_mid_stream: bool = True) -> dict:
    """The whole stimulus: layers of coefficient rewrites and streams, a reset mid-stream; returns the result.

    Parameters
    ----------
    coef_values : callable
        ``coef_values(rng, sel, n) -> (raw, value)``: ``n`` random coefficients of kind ``sel``, as the
        bits written to ``coef.data`` and as the value the model takes.
    vectors : int
        Output beats to check (beats lost to the reset are re-driven and not counted).
    """
    rng = np.random.default_rng(seed)
    tb = StreamTestbench(dut, iface, model, coef_names, out_frac_init, latency, rng, p_valid, p_ready)
    sb, wr = tb.scoreboard, tb.writer
    await tb.reset()

    L, G = iface.lanes, iface.groups
    n_layers = int(np.clip(vectors // 120, 3, 24))
    per_layer = -(-vectors // n_layers)
    fmin, fmax = iface.out_frac_min, iface.out_frac_max
    reset_layer = 1 if reset_mid_stream else -1
    # an out-of-range out_frac write that the unit must ignore, when the port can express one
    lo_rep, hi_rep = -(1 << (iface.out_frac_bits - 1)), (1 << (iface.out_frac_bits - 1)) - 1
    bad = [v for v in (fmin - 1, fmax + 1, lo_rep, hi_rep) if lo_rep <= v <= hi_rep and not fmin <= v <= fmax]
    layer = 0
    while sb.vectors < vectors:
        # -- a new layer: rewrite the coefficients of a few random groups and the out_frac
        n_groups = int(min(G, rng.integers(1, 9)))
        groups = rng.choice(G, n_groups, replace=False)
        cols = (groups[:, None] * L + np.arange(L)).reshape(-1)
        writes: list[tuple] = []
        for sel in range(len(coef_names)):
            raw, value = coef_values(rng, sel, len(cols))
            writes.extend(("coef", sel, int(c), int(r), int(v)) for c, r, v in zip(cols, raw, value))
        writes.append(("frac", [fmin, fmax][layer] if layer < 2 else int(rng.integers(fmin, fmax + 1))))
        if bad:
            writes.append(("frac", int(rng.choice(bad))))
        await tb.load_layer(writes)
        # -- stream this layer's beats; occasionally change out_frac or a coefficient mid-stream
        n = min(per_layer, vectors - sb.vectors)
        codes = edge_biased(rng, iface.adc_min, iface.adc_max, n * L).reshape(n, L)
        beat_groups = rng.choice(groups, n)
        reset_at = int(rng.integers(1, max(2, n))) if layer == reset_layer else -1
        sent_before = sb.vectors

        def each_cycle() -> Any:
            nonlocal reset_at
            if rng.random() < 0.01:
                wr.queue.append(("frac", int(rng.integers(fmin, fmax + 1))))
            if rng.random() < 0.01:
                sel = int(rng.integers(len(coef_names)))
                raw, value = coef_values(rng, sel, 1)
                wr.queue.append(("coef", sel, int(rng.choice(cols)), int(raw[0]), int(value[0])))
            if reset_at >= 0 and sb.vectors - sent_before >= reset_at and sb.expected:
                reset_at = -1
                return tb.reset()
            return None

        await tb.stream(list(zip(map(tuple, codes.tolist()), beat_groups.tolist())), each_cycle)
        layer += 1
    return tb.result()
