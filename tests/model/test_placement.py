"""Placement: which layers go on tiles, on how many, and what the layer table and its JSON say, against a
table worked out by hand for a network built to reach every case (a tile count that is an exact multiple, one
that is one over, a batch norm without ReLU, a named digital layer, a matrix used twice, float32 ops with and
without a weight matrix, more than three nodes of one op)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nmpu_model.analog.tiles import TileParams
from nmpu_model.network.analog_network import check_on_tiles, layer_table, mapping, mark_digital
from nmpu_model.network.graph import GraphError, parse


class Placed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)                               # K 27, C 8
        self.c2, self.bn = nn.Conv2d(8, 64, 1, bias=False), nn.BatchNorm2d(64)  # K 8, C 64
        self.c3 = nn.Conv2d(64, 33, 2, stride=2)                              # K 256, C 33
        self.c4 = nn.Conv2d(33, 16, 1)                                        # K 33, C 16
        self.up = nn.Parameter(torch.randn(16, 16, 2, 2))                     # a weight the tiles do not take
        self.fc = nn.Linear(256, 65)
        self.sh = nn.Linear(65, 65)                                           # called twice
        self.out = nn.Linear(65, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c1(x))
        x = self.bn(self.c2(x)) + 1.0
        x = torch.relu(self.c3(x * 2.0))
        x = self.c4(x)
        y = F.conv_transpose2d(x, self.up, stride=2)
        x = x + y[:, :, ::2, ::2] + 0.5 + 0.25
        x = torch.relu(self.fc(x.flatten(1)))
        return self.out(self.sh(self.sh(x)))


X = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
TILE = TileParams(rows=64, cols=32)

# Worked by hand: tiles = ceil(K / 64) x ceil(C / 32); c2: 1 x 2 (64 = 2 x 32 columns exactly), c3: 4 x 2 (K = 256
# is 4 whole row tiles, C = 33 one column over 32), fc: 4 x 3 (65 columns), sh: ceil(65/64) = 2 x 3.
TABLE = """\
layer  kind            K x C     tiles  where
c1     conv3x3+relu    27 x 8    -      digital (first layer)
c2     conv1x1+bn      8 x 64    1 x 2  analog + NMPU
c3     conv2x2+relu    256 x 33  4 x 2  analog + NMPU
c4     conv1x1         33 x 16   -      digital (named digital)
fc     linear+relu     256 x 65  4 x 3  analog + NMPU
sh     linear, 2 uses  65 x 65   2 x 3  analog + NMPU
out    linear          65 x 10   -      digital (last layer)"""


def _layer(name, op, kind, k, c, where, why, tiles=None, uses=1):
    return {"name": name, "op": f"aten.{op}", "kind": kind, "inputs": k, "outputs": c, "uses": uses,
            "tiles": tiles, "where": where, "why": why}


def test_layer_table_and_its_json_by_hand() -> None:
    text, analog, doc = mapping(Placed().eval(), X, TILE, digital=("first", "last", "c4"))
    lines = text.splitlines()
    assert "\n".join(lines[:8]) == TABLE
    # the float32 ops, each with at most three of its nodes (four adds: the fourth is "...")
    ops = dict(part.split(" (", 1) for part in lines[8].removeprefix("digital float32 ops: ").split("; "))
    assert lines[8].startswith("digital float32 ops: ") and len(lines) == 9
    assert ops["aten.add"] == "add, add_1, add_2, ...)" and ops["aten.mul"] == "mul)"
    assert ops["aten.conv_transpose2d"] == "conv_transpose2d)"
    assert analog == ["c2", "c3", "fc", "sh"]
    assert doc == {
        "layers": [
            _layer("c1", "conv2d", "conv3x3+relu", 27, 8, "digital", "first layer"),
            _layer("c2", "conv2d", "conv1x1+bn", 8, 64, "analog", "", [1, 2]),
            _layer("c3", "conv2d", "conv2x2+relu", 256, 33, "analog", "", [4, 2]),
            _layer("c4", "conv2d", "conv1x1", 33, 16, "digital", "named digital"),
            _layer("fc", "linear", "linear+relu", 256, 65, "analog", "", [4, 3]),
            _layer("sh", "linear", "linear", 65, 65, "analog", "", [2, 3], uses=2),
            _layer("out", "linear", "linear", 65, 10, "digital", "last layer")],
        "float_weight_ops": [{"op": "aten.conv_transpose2d", "nodes": ["conv_transpose2d"], "where": "digital",
                              "why": "not a weight-stationary product the front end maps onto tiles"}]}
    assert layer_table(Placed().eval(), X, TILE, digital=("first", "last", "c4")) == text


def test_default_tile_is_256_square_and_first_and_last_digital() -> None:
    text, analog, doc = mapping(Placed().eval(), X)
    # 256 x 256 tiles: every analog layer fits one row tile and one column tile
    assert [(l["name"], l["tiles"]) for l in doc["layers"] if l["where"] == "analog"] == [
        ("c2", [1, 1]), ("c3", [1, 1]), ("c4", [1, 1]), ("fc", [1, 1]), ("sh", [1, 1])]
    assert analog == ["c2", "c3", "c4", "fc", "sh"]
    assert [l["why"] for l in doc["layers"]] == ["first layer", "", "", "", "", "", "last layer"]


@pytest.mark.parametrize("digital, expect", [
    ((), {}),
    ("c3", {"c3": "named digital"}),                    # one name as a string, not its letters
    (["first"], {"c1": "first layer"}),
    (["last"], {"out": "last layer"}),
    (["first", "c1"], {"c1": "named digital"}),         # a name wins over its position
    (["out", "last"], {"out": "named digital"}),
])
def test_mark_digital_by_name_and_position(digital, expect) -> None:
    layers = parse(Placed().eval(), X[:2]).layers
    mark_digital(layers, ["c2", "c3", "c4"])          # marks from an earlier call are replaced, not kept
    mark_digital(layers, digital)
    assert {l.name: l.why for l in layers if l.digital} == expect
    assert all(l.why == "" for l in layers if not l.digital)


def test_unknown_digital_layer_is_one_line_and_names_the_layers() -> None:
    layers = parse(Placed().eval(), X[:2]).layers
    with pytest.raises(ValueError) as e:
        mark_digital(layers, ["first", "c9"])
    assert str(e.value) == "network: unknown digital layer 'c9' (layers: c1, c2, c3, c4, fc, sh, out)"


class Dilated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=2, dilation=2)
        self.b = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
        self.c = nn.Linear(4 * 8 * 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.b(self.a(x)).flatten(1))


def test_a_layer_that_cannot_be_mapped_is_refused_unless_digital() -> None:
    msg = ("network: b (aten.conv2d): dilated convolution (dilation=[2, 2]) cannot be mapped onto tiles; "
           "keep it digital (--digital b)")
    with pytest.raises(GraphError) as e:
        mapping(Dilated().eval(), X)
    assert str(e.value) == msg
    # the first layer is digital by default, so its dilation is no problem; named, b is too
    text, analog, _ = mapping(Dilated().eval(), X, digital=("first", "last", "b"))
    assert analog == [] and text == ("layer  kind     K x C    tiles  where\n"
                                     "a      conv3x3  27 x 4   -      digital (first layer)\n"
                                     "b      conv3x3  36 x 4   -      digital (named digital)\n"
                                     "c      linear   256 x 2  -      digital (last layer)")


def test_nothing_on_tiles_is_refused_with_every_layer_and_why() -> None:
    with pytest.raises(GraphError) as e:
        check_on_tiles(Placed().eval(), X, ["first", "last", "c2", "c3", "c4", "fc", "sh"])
    assert str(e.value) == (
        "network: nothing is on tiles (conv2d/linear layers: c1 (first layer), c2 (named digital), c3 (named digital), "
        "c4 (named digital), fc (named digital), sh (named digital), out (last layer); ops with weights that run in "
        "float32, not on tiles: aten.conv_transpose2d); its analog figures would be the float model's: keep fewer "
        "layers digital (--digital)")
    check_on_tiles(Placed().eval(), X, ["first", "last", "c2", "c3", "c4", "fc"])   # sh on tiles: accepted


class Odd(nn.Module):
    """A 1 x 3 kernel, three nodes of one op (no "..."), a 2-D weight the tiles do not take (an elementwise mask;
    a matmul with a constant matrix is a layer), ops that only read shapes or tuple items (not listed)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, (1, 3), padding=(0, 1))
        self.c2 = nn.Conv2d(4, 6, (3, 1), padding=(1, 0))
        self.mask = nn.Parameter(torch.randn(8, 8))
        self.p = nn.Parameter(torch.randn(6 * 8 * 8, 5))
        self.fc = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(torch.tanh(torch.tanh(self.c2(self.c1(x))))) * self.mask
        a, b = torch.chunk(y, 2, dim=1)
        y = torch.cat([a, b], 1)
        return self.fc(y.reshape(y.shape[0], -1) @ self.p)


def test_kernels_listed_rows_by_columns_three_nodes_in_full_and_shape_ops_left_out() -> None:
    text, analog, doc = mapping(Odd().eval(), X, digital=())
    rows = text.splitlines()
    assert [r.split()[:2] for r in rows[1:5]] == [["c1", "conv1x3"], ["c2", "conv3x1"], ["matmul", "linear"],
                                                  ["fc", "linear"]]
    ops = rows[-1].removeprefix("digital float32 ops: ")
    assert "aten.tanh (tanh, tanh_1, tanh_2)" in ops.split("; ")
    assert "getitem" not in ops and "sym_size" not in ops and "aten.chunk" in ops
    assert [(o["op"], o["nodes"]) for o in doc["float_weight_ops"]] == [("aten.mul", ["mul"])]


class TwoWeighted(Odd):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Parameter(torch.randn(6, 6, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(torch.tanh(self.c2(self.c1(x))), self.up) * self.mask
        return self.fc(y.reshape(y.shape[0], -1) @ self.p)


def test_nothing_on_tiles_names_every_weighted_op() -> None:
    with pytest.raises(GraphError) as e:
        check_on_tiles(TwoWeighted().eval(), X, ["c1", "c2", "matmul", "fc"])
    assert ("(named digital); ops with weights that run in float32, not on tiles: aten.conv_transpose2d, aten.mul); "
            "its analog figures" in str(e.value))


def test_nothing_on_tiles_without_weighted_ops_says_only_the_layers() -> None:
    with pytest.raises(GraphError) as e:
        check_on_tiles(Dilated().eval(), X, ["first", "last", "b"])
    assert str(e.value) == ("network: nothing is on tiles (conv2d/linear layers: a (first layer), b (named digital), "
                            "c (last layer)); its analog figures would be the float model's: keep fewer layers "
                            "digital (--digital)")
