// Bulk co-simulation harness: streams a whole layer through the Verilated NMPU with no per-cycle Python.
//
// Built by cosim/bulk.py with `verilator --cc --exe --build`; the unit's widths come in as -D defines
// (NMPU_LANES, NMPU_ADC_BITS, NMPU_GROUP_BITS, NMPU_OUT_BITS, NMPU_OUT_SIGNED, NMPU_FRAC_BITS) from the same Interface the
// Verilog was exported with, and the stimulus header is checked against them.
//
// Verilator escapes the double underscore of the port names (i_stream__valid is i_stream___05Fvalid).
//
// Usage: bulk STIM.bin OUT.bin SEED P_VALID_THR P_READY_THR [TRACE_FILE START END]
//   P_*_THR: a probability p as ceil(p * 2^24); a draw u (24 bits) succeeds when u < THR.
//
// Stimulus (little endian):
//   char[8] "NMPUBLK1"; u32 lanes; u32 n_blocks; u64 n_beats
//   n_blocks x { u32 n_writes; i32 has_frac; i32 frac; u64 n_beats;
//                n_writes x { u32 sel; u32 addr; u64 data } }
//   n_beats x lanes x i32 codes;  n_beats x u32 group
// Output: n_beats x lanes x i32 output codes, in input order (sign-extended when the output is signed).
// Stdout: one JSON object (cycles, beats, protocol errors, simulation seconds).
//
// The cycle is the one of cosim/tb_layer.py (itself built from cosim/tb_nmpu.py's components), so that the
// same seed gives the same handshakes, the same cycle count and the same outputs in both modes:
//   drive (writer, then driver, then monitor), settle, sample the handshakes, rising edge.
// One shared xorshift64* generator: the driver draws only when it holds a beat not yet offered (a beat once
// offered stays valid until taken, the stream rules), the monitor draws o_stream.ready every cycle.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "Vnmpu.h"
#include "verilated.h"
#if VM_TRACE_FST
#include "verilated_fst_c.h"
#elif VM_TRACE
#include "verilated_vcd_c.h"
#endif

#ifndef NMPU_LANES
#error "NMPU_LANES must be defined by the build (cosim/bulk.py)"
#endif

static constexpr unsigned LANES = NMPU_LANES;
static constexpr unsigned ADC_BITS = NMPU_ADC_BITS;
static constexpr unsigned GROUP_BITS = NMPU_GROUP_BITS;
static constexpr unsigned OUT_BITS = NMPU_OUT_BITS;
static constexpr bool OUT_SIGNED = NMPU_OUT_SIGNED;
static constexpr unsigned IN_BITS = LANES * ADC_BITS + GROUP_BITS;
static constexpr unsigned IN_WORDS = (IN_BITS + 31) / 32 + 1;     // +1: a 64-bit store reads two words
static constexpr unsigned OUT_WORDS = (LANES * OUT_BITS + 31) / 32 + 1;

// ---- packing into Verilator's port types (CData/SData/IData/QData integers, or VlWide<N> words) ----
template <typename T>
static void store(T& sig, const uint32_t* w) {
    if constexpr (std::is_integral_v<T>) {
        sig = static_cast<T>(uint64_t(w[0]) | (uint64_t(w[1]) << 32));
    } else {
        for (size_t i = 0; i < sizeof(sig) / 4; ++i) sig[i] = w[i];
    }
}
template <typename T>
static void load(const T& sig, uint32_t* w) {
    std::memset(w, 0, OUT_WORDS * 4);
    if constexpr (std::is_integral_v<T>) {
        uint64_t v = uint64_t(sig);
        w[0] = uint32_t(v);
        w[1] = uint32_t(v >> 32);
    } else {
        for (size_t i = 0; i < sizeof(sig) / 4; ++i) w[i] = sig[i];
    }
}
static void put_bits(uint32_t* w, unsigned lo, unsigned width, uint32_t v) {
    for (unsigned b = 0; b < width; ++b, ++lo)
        if ((v >> b) & 1u) w[lo / 32] |= 1u << (lo % 32);
}
static uint32_t get_bits(const uint32_t* w, unsigned lo, unsigned width) {
    uint32_t v = 0;
    for (unsigned b = 0; b < width; ++b, ++lo) v |= ((w[lo / 32] >> (lo % 32)) & 1u) << b;
    return v;
}

// ---- the seeded stall generator (same sequence as cosim/tb_layer.py's XorShift) ----
struct XorShift {
    uint64_t s;
    explicit XorShift(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {
        if (s == 0) s = 1;
    }
    uint32_t next24() {  // xorshift64*, top 24 bits
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return uint32_t((s * 0x2545F4914F6CDD1Dull) >> 40);
    }
};

struct Write {
    uint32_t sel, addr;
    uint64_t data;
};
struct Block {
    std::vector<Write> writes;
    int32_t has_frac, frac;
    uint64_t n_beats;
};

[[noreturn]] static void die(const std::string& msg) {
    std::fprintf(stderr, "bulk harness: %s\n", msg.c_str());
    std::exit(2);
}

template <typename T>
static void rd(FILE* f, T* p, size_t n, const char* what) {
    if (std::fread(p, sizeof(T), n, f) != n) die(std::string("stimulus truncated while reading ") + what);
}

int main(int argc, char** argv) {
    if (argc != 6 && argc != 9) die("usage: bulk STIM OUT SEED P_VALID_THR P_READY_THR [TRACE START END]");
    const char* stim_path = argv[1];
    const char* out_path = argv[2];
    const uint64_t seed = std::strtoull(argv[3], nullptr, 10);
    const uint32_t thr_valid = uint32_t(std::strtoul(argv[4], nullptr, 10));
    const uint32_t thr_ready = uint32_t(std::strtoul(argv[5], nullptr, 10));
    std::string trace_path;
    uint64_t win_lo = 0, win_hi = 0;
    if (argc == 9) {
        trace_path = argv[6];
        win_lo = std::strtoull(argv[7], nullptr, 10);
        win_hi = std::strtoull(argv[8], nullptr, 10);
    }

    // ---- read the stimulus ----
    FILE* f = std::fopen(stim_path, "rb");
    if (!f) die(std::string("cannot open ") + stim_path);
    char magic[8];
    rd(f, magic, 8, "magic");
    if (std::memcmp(magic, "NMPUBLK1", 8) != 0) die("not a stimulus file (bad magic)");
    uint32_t lanes, n_blocks;
    uint64_t n_beats;
    rd(f, &lanes, 1, "lanes");
    rd(f, &n_blocks, 1, "blocks");
    rd(f, &n_beats, 1, "beats");
    if (lanes != LANES) die("stimulus has " + std::to_string(lanes) + " lanes, the build " + std::to_string(LANES));
    std::vector<Block> blocks(n_blocks);
    uint64_t sum = 0;
    for (auto& b : blocks) {
        uint32_t nw;
        rd(f, &nw, 1, "block");
        rd(f, &b.has_frac, 1, "block");
        rd(f, &b.frac, 1, "block");
        rd(f, &b.n_beats, 1, "block");
        b.writes.resize(nw);
        for (auto& w : b.writes) {
            rd(f, &w.sel, 1, "write");
            rd(f, &w.addr, 1, "write");
            rd(f, &w.data, 1, "write");
        }
        sum += b.n_beats;
    }
    if (sum != n_beats) die("block beat counts do not add up to the total");
    std::vector<int32_t> codes(n_beats * LANES);
    std::vector<uint32_t> groups(n_beats);
    rd(f, codes.data(), codes.size(), "codes");
    rd(f, groups.data(), groups.size(), "groups");
    std::fclose(f);

    // pack every beat once, before the clock starts: the loop below only copies words
    std::vector<uint32_t> packed(n_beats * IN_WORDS, 0);
    const uint32_t code_mask = ADC_BITS >= 32 ? 0xFFFFFFFFu : ((1u << ADC_BITS) - 1);
    for (uint64_t i = 0; i < n_beats; ++i) {
        uint32_t* w = &packed[i * IN_WORDS];
        for (unsigned j = 0; j < LANES; ++j) put_bits(w, j * ADC_BITS, ADC_BITS, uint32_t(codes[i * LANES + j]) & code_mask);
        put_bits(w, LANES * ADC_BITS, GROUP_BITS, groups[i]);
    }
    std::vector<int32_t> out(n_beats * LANES, 0);

    // ---- the model ----
    auto ctx = std::make_unique<VerilatedContext>();
#if VM_TRACE
    if (!trace_path.empty()) ctx->traceEverOn(true);
#endif
    auto top = std::make_unique<Vnmpu>(ctx.get(), "nmpu");
#if VM_TRACE_FST
    std::unique_ptr<VerilatedFstC> tfp;
#elif VM_TRACE
    std::unique_ptr<VerilatedVcdC> tfp;
#endif
    uint64_t cycle = 0;
    auto dump = [&](uint64_t t) {
#if VM_TRACE
        if (tfp) tfp->dump(t);
#else
        (void)t;
#endif
    };
    auto window = [&]() {
#if VM_TRACE
        if (trace_path.empty()) return;
        if (!tfp && cycle >= win_lo && cycle < win_hi) {
#if VM_TRACE_FST
            tfp = std::make_unique<VerilatedFstC>();
#else
            tfp = std::make_unique<VerilatedVcdC>();
#endif
            top->trace(tfp.get(), 99);
            tfp->open(trace_path.c_str());
        } else if (tfp && cycle >= win_hi) {
            tfp->close();
            tfp.reset();
            trace_path.clear();
        }
#endif
    };
    // one clock cycle: inputs already set with clk low; settle, let `sample` see the handshakes, edge
    auto edge = [&]() {
        top->clk = 1;
        top->eval();
        dump(cycle * 10 + 5);
        top->clk = 0;   // the falling edge is evaluated together with the next cycle's inputs
        ++cycle;
    };

    top->clk = 0;
    top->rst = 1;
    top->i_stream___05Fvalid = 0;
    top->o_stream___05Fready = 0;
    top->coef___05Fen = 0;
    top->out_frac___05Fen = 0;
    for (int k = 0; k < 2; ++k) {  // the reset of tb_layer.py: two cycles
        top->eval();
        top->clk = 1;
        top->eval();
        top->clk = 0;
    }
    top->rst = 0;

    XorShift rng(seed);
    bool valid = false, have = false;
    uint64_t next_beat = 0, cur = 0, n_out = 0;
    uint32_t held[OUT_WORDS];
    bool holding = false;
    uint64_t protocol_errors = 0;
    std::string first_error;
    uint64_t stalled_out = 0, idle_in = 0;
    // deadlock guard: with random stalls some beat moves every few cycles; a unit that stops taking or
    // giving beats (a stuck ready, a lost beat) must end the run as an error, not hang it
    constexpr uint64_t STUCK = 100000;
    uint64_t last_progress = 0;
    uint32_t ow[OUT_WORDS];
    const auto t0 = std::chrono::steady_clock::now();

    // drive, settle, sample: the part of a cycle before the rising edge
    auto cycle_body = [&](const Write* w, const int32_t* frac, uint64_t beat_end) {
        window();
        // writer: at most one coefficient and one out_frac write per cycle
        top->coef___05Fen = w != nullptr;
        if (w) {
            top->coef___05Fsel = w->sel;
            top->coef___05Faddr = w->addr;
            top->coef___05Fdata = w->data;
        }
        top->out_frac___05Fen = frac != nullptr;
        if (frac) top->out_frac___05Fdata = uint32_t(*frac) & ((1u << NMPU_FRAC_BITS) - 1);  // two's complement bits
        // driver: take the next beat when idle; a beat once offered stays offered
        if (!have && next_beat < beat_end) {
            cur = next_beat++;
            have = true;
            store(top->i_stream___05Fpayload, &packed[cur * IN_WORDS]);
        }
        valid = have && (valid || rng.next24() < thr_valid);
        top->i_stream___05Fvalid = valid;
        // monitor: ready with probability p_ready, every cycle
        const bool ready = rng.next24() < thr_ready;
        top->o_stream___05Fready = ready;
        top->eval();
        dump(cycle * 10);
        // sample what the rising edge will see
        if (valid && top->i_stream___05Fready) {
            last_progress = cycle;
            have = false;
            valid = false;
        } else if (have) {
            ++idle_in;
        }
        const bool ov = top->o_stream___05Fvalid;
        if (holding) {
            load(top->o_stream___05Fpayload, ow);
            if (!ov || std::memcmp(ow, held, sizeof(ow)) != 0) {
                if (!protocol_errors++)
                    first_error = "cycle " + std::to_string(cycle) + ": o_stream beat changed or withdrawn while stalled";
            }
            holding = false;
        }
        if (ov) {
            load(top->o_stream___05Fpayload, ow);
            if (ready) {
                last_progress = cycle;
                if (n_out >= n_beats) {
                    if (!protocol_errors++)
                        first_error = "cycle " + std::to_string(cycle) + ": output beat with no input beat in flight";
                } else {
                    for (unsigned j = 0; j < LANES; ++j) {
                        uint32_t v = get_bits(ow, j * OUT_BITS, OUT_BITS);
                        if (OUT_SIGNED && OUT_BITS < 32 && ((v >> (OUT_BITS - 1)) & 1u)) v |= ~0u << OUT_BITS;
                        out[n_out * LANES + j] = int32_t(v);
                    }
                    ++n_out;
                }
            } else {
                std::memcpy(held, ow, sizeof(ow));
                holding = true;
                ++stalled_out;
            }
        }
        edge();
    };

    auto stuck = [&]() {
        if (cycle - last_progress <= STUCK) return false;
        if (!protocol_errors++)
            first_error = "deadlock: no beat accepted or delivered for " + std::to_string(STUCK) + " cycles (" +
                          std::to_string(n_beats - next_beat + have) + " inputs not accepted, " +
                          std::to_string(n_out) + " of " + std::to_string(n_beats) + " outputs, cycle " +
                          std::to_string(cycle) + ")";
        return true;
    };
    uint64_t beat_start = 0;
    bool dead = false;
    for (const auto& b : blocks) {
        if (dead) break;
        // the block's coefficient (and out_frac) writes, then its beats (writes wait for the previous
        // block's beats to be accepted: a beat reads its coefficients when accepted)
        for (size_t i = 0; i < b.writes.size() || (i == 0 && b.has_frac); ++i)
            cycle_body(i < b.writes.size() ? &b.writes[i] : nullptr, (i == 0 && b.has_frac) ? &b.frac : nullptr,
                       beat_start);
        const uint64_t end = beat_start + b.n_beats;
        last_progress = cycle;   // the writes took their cycles; the guard counts from the first beat
        while ((next_beat < end || have) && !dead) {
            cycle_body(nullptr, nullptr, end);
            dead = stuck();
        }
        beat_start = end;
    }
    while (n_out < n_beats && !dead) {   // drain
        cycle_body(nullptr, nullptr, beat_start);
        dead = stuck();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
#if VM_TRACE
    if (tfp) tfp->close();
#endif
    top->final();

    FILE* o = std::fopen(out_path, "wb");
    if (!o) die(std::string("cannot write ") + out_path);
    if (std::fwrite(out.data(), sizeof(int32_t), out.size(), o) != out.size()) die("short write of the outputs");
    std::fclose(o);
    std::string esc;
    for (char c : first_error) esc += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    std::printf("{\"cycles\": %llu, \"beats\": %llu, \"outputs\": %llu, \"protocol_errors\": %llu, "
                "\"first_error\": \"%s\", \"input_wait_cycles\": %llu, \"output_stall_cycles\": %llu, "
                "\"sim_seconds\": %.6f}\n",
                (unsigned long long)cycle, (unsigned long long)n_beats, (unsigned long long)n_out,
                (unsigned long long)protocol_errors, esc.c_str(), (unsigned long long)idle_in,
                (unsigned long long)stalled_out, secs);
    return 0;
}
