"""Sequence models on tiles, against the float model and batch-invariant: a transformer's projections (N x T x F
inputs, attention's (T, N, F) and its flattened (T * N, F) output projection) row by row, and a 1-D CNN's
convolutions (conv1d as a conv2d of height 1)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nmpu_model import AnalogNetwork, NMPUConfig, TileParams
from nmpu_model.network.graph import parse
from nmpu_model.workloads.models import GPTBlock as _GPTBlock


class Block(nn.Module):
    def __init__(self, d: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class ViT(nn.Module):
    """Patches as tokens (N x 16 x 16), a linear patch embedding, one pre-norm block, mean pooling, a head."""

    def __init__(self, patch: int = 16, d: int = 32, tokens: int = 16, classes: int = 4) -> None:
        super().__init__()
        self.embed = nn.Linear(patch, d)
        self.pos = nn.Parameter(torch.randn(tokens, d) * 0.1)
        self.block = Block(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.block(self.embed(x) + self.pos).mean(1))


class TokenBN(nn.Module):
    """A token-wise linear followed by a batch norm over the tokens (axis 1): not foldable into the columns."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.mid, self.bn, self.last = nn.Linear(16, 24), nn.Linear(24, 24), nn.BatchNorm1d(16), \
            nn.Linear(24, 4)

    def forward(self, x):
        return self.last(torch.relu(self.bn(self.mid(torch.relu(self.first(x))))).mean(1))


def _model(cls: type) -> nn.Module:
    torch.manual_seed(0)
    m = cls()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm1d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
    return m.eval()


X = torch.randn(24, 16, 16, generator=torch.Generator().manual_seed(1))
ANALOG = ["block.attn.linear_1", "block.attn.linear_2", "block.mlp.0", "block.mlp.2"]


def test_a_transformers_projections_are_layers_and_attention_stays_digital() -> None:
    g = parse(_model(ViT), X[:2])
    assert [l.name for l in g.layers] == ["embed", *ANALOG, "head"]
    assert all(not l.problem for l in g.layers)
    by = {l.name: l for l in g.layers}
    # attention projects (T, N, F) and its output projection takes the flattened (T * N, F)
    assert (by["block.attn.linear_1"].lead, by["block.attn.linear_1"].batch_dim) == (None, 1)
    assert (by["block.attn.linear_2"].lead, by["block.attn.linear_2"].batch_dim) == ((16, -1), 1)
    assert (by["block.mlp.0"].lead, by["block.mlp.0"].batch_dim) == (None, 0)
    assert any("scaled_dot_product_attention" in str(s.fn) for s in g.ops())


def test_ideal_tiles_follow_the_float_model() -> None:
    """Ideal devices, no noise or mismatch: only the 8-bit DACs and ADCs and the NMPU's rounding remain
    (measured relative error 0.0100 for the ViT and 0.0074 for TokenBN; limits 1.3x)."""
    for cls, limit in ((ViT, 0.013), (TokenBN, 0.0097)):
        m = _model(cls)
        net = AnalogNetwork.build(m, X[:16], seed=1, tile=TileParams.ideal())
        assert len(net.analog_layers) >= 1
        out, _ = net.run(X, NMPUConfig())
        with torch.no_grad():
            ref = m(X)
        err = float((out - ref).norm() / ref.norm())
        assert err < limit, (cls.__name__, err)


def test_token_rows_and_their_noise_do_not_depend_on_the_batch() -> None:
    """Every sample's rows are its own (sample-major whatever axis the samples are on; a sample's noise is drawn
    by its index in the inputs), so the same seed gives the tiles the same bits in batches of 24, 5 or 1. (The
    outputs too at 24 and 5; at 1 the digital float32 ops themselves differ in the last bit, as the float model
    does: 3e-8 here.)"""
    m = _model(ViT)
    net = AnalogNetwork.build(m, X[:16], seed=3)
    assert net.analog_layers == ANALOG
    a, ta = net.run(X, NMPUConfig(), record=True)
    b, tb = net.run(X, NMPUConfig(), batch_size=5, record=True)
    _, tc = net.run(X, NMPUConfig(), batch_size=1, record=True)
    assert torch.equal(a, b)
    for name in ANALOG:
        assert ta[name].adc_codes.shape[0] == 24 * 16
        for t in (tb, tc):
            assert (ta[name].adc_codes == t[name].adc_codes).all(), name
            assert (ta[name].out_codes == t[name].out_codes).all(), name
    with torch.no_grad():
        ref = m(X)
    assert not torch.equal(a, ref)          # the tiles' noise is there


def _cnn1d() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv1d(3, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
                      nn.Conv1d(16, 16, 3, padding="same"), nn.BatchNorm1d(16), nn.ReLU(), nn.MaxPool1d(2),
                      nn.Conv1d(16, 24, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(24 * 7, 4))
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm1d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


S = torch.randn(40, 3, 32, generator=torch.Generator().manual_seed(2))   # 40 signals, 3 channels, length 32


def test_a_1d_cnn_goes_onto_tiles() -> None:
    """conv1d layers (with folded BN, ReLU, padding="same", stride 2) are analog, within 1.3x the measured
    ideal-tile error (0.0079) of the float model; their codes are batch-invariant."""
    from nmpu_model.network.analog_network import layer_table

    m = _cnn1d()
    table = layer_table(m, S[:16])
    assert "3      conv1x3+bn+relu  48 x 16  1 x 1  analog + NMPU" in table, table
    assert "7      conv1x3+relu     48 x 24  1 x 1  analog + NMPU" in table, table
    net = AnalogNetwork.build(m, S[:16], seed=1, tile=TileParams.ideal())
    assert net.analog_layers == ["3", "7"]
    out, _ = net.run(S, NMPUConfig())
    with torch.no_grad():
        ref = m(S)
    assert out.shape == ref.shape
    assert float((out - ref).norm() / ref.norm()) < 0.0103
    net = AnalogNetwork.build(m, S[:16], seed=1)
    _, ta = net.run(S, NMPUConfig(), record=True)
    _, tb = net.run(S, NMPUConfig(), batch_size=3, record=True)
    for name in ("3", "7"):
        assert (ta[name].adc_codes == tb[name].adc_codes).all()
    assert ta["3"].adc_codes.shape == (40 * 32, 16) and ta["7"].adc_codes.shape == (40 * 7, 24)


# ---- a GPT-2 style block written as HuggingFace writes it: Conv1D modules (addmm on a (nx, nf) weight) ----------
class Conv1D(nn.Module):
    """HuggingFace GPT-2's Conv1D: a linear with its weight stored (nx, nf), written with addmm."""
    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.1)
        self.bias = nn.Parameter(torch.zeros(nf))
    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)

class MatmulProj(nn.Module):
    """A projection written ``x @ W`` (aten.matmul on a constant (K, C) weight), no bias."""
    def __init__(self, nx, nf):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.1)
    def forward(self, x):
        return x @ self.weight


class GPTBlock(_GPTBlock):
    """The char-gpt's decoder block with its projections written as HuggingFace GPT-2 writes them."""
    def __init__(self, d=32, heads=4):
        super().__init__(d, heads)
        self.c_attn, self.c_proj = Conv1D(3 * d, d), Conv1D(d, d)
        self.c_fc, self.mlp_proj = Conv1D(4 * d, d), MatmulProj(4 * d, d)

class TinyLM(nn.Module):
    def __init__(self, vocab=20, d=32, t=12):
        super().__init__()
        self.wte = nn.Linear(vocab, d)    # one-hot tokens in
        self.wpe = nn.Parameter(torch.randn(t, d) * 0.1)
        self.block = GPTBlock(d)
        self.head = nn.Linear(d, vocab)
    def forward(self, x):
        return self.head(self.block(self.wte(x) + self.wpe))



def test_gpt2_style_conv1d_and_matmul_projections_go_onto_tiles() -> None:
    """HuggingFace GPT-2's projections are ``Conv1D`` modules (``addmm(bias, x.view(-1, nx), W)``, W stored
    (nx, nf)), not ``nn.Linear``; a projection may also be written ``x @ W``. Both are weight-stationary products:
    analog layers (causal attention stays digital), within 1.3x the measured ideal-tile error (0.0224), their
    codes batch-invariant, and all digital they compute the float model exactly."""
    from nmpu_model.network.analog_network import layer_table

    torch.manual_seed(0)
    m = TinyLM().eval()
    x = F.one_hot(torch.randint(0, 20, (24, 12), generator=torch.Generator().manual_seed(4)), 20).float()
    table = layer_table(m, x[:16])
    assert "block.mlp_proj  linear  128 x 32  1 x 1  analog + NMPU" in table, table
    proj = ["block.c_attn", "block.c_proj", "block.c_fc", "block.mlp_proj"]
    net = AnalogNetwork.build(m, x[:16], seed=1, tile=TileParams.ideal())
    assert net.analog_layers == proj
    out, _ = net.run(x, NMPUConfig())
    with torch.no_grad():
        ref = m(x)
    assert float((out - ref).norm() / ref.norm()) < 0.0292
    net = AnalogNetwork.build(m, x[:16], seed=1)
    _, ta = net.run(x, NMPUConfig(), record=True)
    _, tb = net.run(x, NMPUConfig(), batch_size=5, record=True)
    for name in proj:
        assert (ta[name].adc_codes == tb[name].adc_codes).all(), name
    digital, _ = AnalogNetwork.build(m, x[:16], digital=proj + ["first", "last"]).run(x, NMPUConfig())
    assert torch.equal(digital, ref)


# ---- recurrent networks: the input and recurrent matrices on tiles, the gates and the cell state digital --------
class RNNClassifier(nn.Module):
    """An LSTM or GRU over N x T x F sequences (batch_first or time-major), its last hidden state to a head."""

    def __init__(self, cell: type, batch_first: bool, layers: int = 2, f: int = 8, h: int = 32) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.rnn = cell(f, h, num_layers=layers, batch_first=batch_first)
        self.head = nn.Linear(h, 4)

    def forward(self, x):
        y, _ = self.rnn(x if self.batch_first else x.transpose(0, 1))
        return self.head((y if self.batch_first else y.transpose(0, 1))[:, -1])


Q = torch.randn(40, 12, 8, generator=torch.Generator().manual_seed(5))   # 40 sequences of 12 steps x 8 features


def test_lstm_and_gru_matrices_go_onto_tiles_once_each() -> None:
    """``nn.LSTM``/``nn.GRU`` are unrolled (PyTorch's decomposition of ``aten.lstm``/``aten.gru``): each layer's
    input matrix is one token-wise linear, its recurrent matrix one layer used at every time step, programmed
    and calibrated once (``uses`` = T). On ideal tiles within 1.3x the measured error of the float model
    (LSTM 0.0056, GRU 0.0062); every matrix's codes batch-invariant; all digital, the model itself bit for bit
    (PyTorch's reference recurrence: the oneDNN-fused LSTM kernel differs in the last bit, 3e-8)."""
    from nmpu_model.network.analog_network import layer_table

    for cell, batch_first, limit in ((nn.LSTM, True, 0.0073), (nn.GRU, False, 0.0081)):
        torch.manual_seed(0)
        m = RNNClassifier(cell, batch_first).eval()
        names = ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l1", "rnn.weight_hh_l1", "head"]
        g = parse(m, Q[:2])
        assert [l.name for l in g.layers] == names
        assert [l.uses for l in g.layers] == [1, 12, 1, 12, 1]
        assert "rnn.weight_hh_l0  linear, 12 uses" in layer_table(m, Q[:16])
        net = AnalogNetwork.build(m, Q[:16], seed=1, tile=TileParams.ideal())
        assert net.analog_layers == names[1:4] and sorted(net.programmed) == sorted(names[1:4])
        out, _ = net.run(Q, NMPUConfig())
        with torch.no_grad():
            ref = m(Q)
        err = float((out - ref).norm() / ref.norm())
        assert err < limit, (cell.__name__, err)
        net = AnalogNetwork.build(m, Q[:16], seed=1)
        _, ta = net.run(Q, NMPUConfig(), record=True)
        _, tb = net.run(Q, NMPUConfig(), batch_size=7, record=True)
        for name in names[1:4]:
            assert ta[name].adc_codes.shape == (40 * 12, g.layers[1].outputs)
            assert (ta[name].adc_codes == tb[name].adc_codes).all(), name
            assert (ta[name].out_codes == tb[name].out_codes).all(), name
        with torch.backends.mkldnn.flags(enabled=False):
            digital, _ = AnalogNetwork.build(m, Q[:16], digital=names).run(Q, NMPUConfig())
            assert torch.equal(digital, m(Q)), cell.__name__


class Twice(nn.Module):
    """One weight applied twice (a weight-tied block): one matrix on the tiles, used twice, its second use on inputs
    four times larger than its first."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.mid, self.last = nn.Linear(16, 24), nn.Linear(24, 24), nn.Linear(24, 4)

    def forward(self, x):
        h = torch.relu(self.first(x))
        return self.last(torch.relu(self.mid(4 * torch.relu(self.mid(h)))))


def test_a_weight_used_twice_is_one_layer_calibrated_on_both_uses() -> None:
    """The shared matrix is calibrated on the inputs of both its uses: on ideal tiles within 1.3x the measured error
    (0.0315) of the float model; calibrated on its first use alone (the second's inputs clipped), 0.139."""
    torch.manual_seed(0)
    m = Twice().eval()
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(6))
    g = parse(m, x[:2])
    assert [(l.name, l.uses) for l in g.layers] == [("first", 1), ("mid", 2), ("last", 1)]
    net = AnalogNetwork.build(m, x[:32], seed=1, tile=TileParams.ideal())
    assert net.analog_layers == ["mid"]
    out, tr = net.run(x, NMPUConfig(), record=True)
    assert tr["mid"].adc_codes.shape == (2 * 64, 24)
    with torch.no_grad():
        ref = m(x)
    err = float((out - ref).norm() / ref.norm())
    assert err < 0.041, err


def test_all_digital_is_each_float_model_bit_for_bit() -> None:
    """Every layer kept digital, the front end runs the model's own ATen calls: the ViT, the token-wise batch norm
    net and the 1-D CNN equal their float models bit for bit (the GPT-2 style block, the LSTM/GRU and the
    language model are checked in their own tests). ``nn.MultiheadAttention`` in eval mode under ``no_grad`` takes
    PyTorch's fused fast path (``_native_multi_head_attention``), which ``torch.export`` does not trace: the exported
    graph computes the model as it runs with gradients on, and differs from the fast path in the last bits."""
    for m, x in ((_model(ViT), X), (_model(TokenBN), X), (_cnn1d(), S)):
        names = [l.name for l in parse(m, x[:2]).layers]
        out, _ = AnalogNetwork.build(m, x[:16], digital=names).run(x, NMPUConfig())
        assert torch.equal(out, m(x).detach()), type(m).__name__
        with torch.no_grad():
            assert float((out - m(x)).abs().max()) < 1e-6
