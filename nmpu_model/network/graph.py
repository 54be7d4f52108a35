"""The network front end: any PyTorch network as a graph of ATen ops, and the layers that go on tiles.

A model is taken as a ``torch.export`` program: an ``ExportedProgram`` as given (``torch.export.load``
of a ``.pt2`` file), or an ``nn.Module`` exported here with a dynamic batch dimension. Its graph
(``ep.module().graph``, ATen ops: ``aten.conv2d``, ``aten.linear``, ``aten.batch_norm``, ``aten.relu``,
``aten.add``, ``aten.cat``, pooling, ``aten.flatten``/``view``/``reshape``, ...) becomes a list of
:class:`Step` in execution order:

- ``layer``: a weight-stationary product whose weight is a constant: ``conv2d``, ``conv1d`` (on the tiles a
  conv2d of height 1), ``linear``, and ``addmm``/``matmul``/``mm`` on a constant 2-D weight (:data:`MATMUL_OPS`),
  fused with the eval-mode batch norm that alone consumes it and the ReLU that alone consumes that
  (:class:`LayerSpec`). Analog (on tiles, the NMPU after it) or digital (the same ATen calls in float32).
- ``grid``: an op that maps integer codes to integer codes of the same step, so the NMPU's output
  codes pass through it unchanged in kind: max pooling, ReLU, dropout (eval), and shape-only ops
  (flatten, view, reshape, squeeze, unsqueeze, clone). This is the hardware's rule: codes stay codes
  across these, and the next analog layer's DACs take them as they are.
- ``op``: anything else, run in float32 on real values at its exact place: residual adds, ``cat``,
  average pooling, adaptive pooling, scaling, ... (the digital adder/requantizer of the hardware:
  after it, the next analog layer's DACs quantize the real value with a calibrated step).

What cannot be mapped is refused with one line naming the node (its module path), the op and why
(:class:`GraphError`, a ``ValueError``): a model that does not export, a grouped or dilated
convolution on an analog layer, a string-padded convolution on an analog layer, an op whose output shape
is unknown. A ``linear`` takes one vector per sample (``N x F``) or per token (``N x ... x F``, a
transformer's projections): every vector is one row of the tiles.
"""
from __future__ import annotations

import operator
import re
import weakref
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, Callable

import torch
import torch._dynamo  # noqa: F401  torch.export's tracer (~1 s to import): at import, not in the first build
from torch import nn

__all__ = ["GraphError", "LayerSpec", "Step", "Graph", "export_model", "parse"]

aten = torch.ops.aten


class GraphError(ValueError):
    """A network that cannot be mapped (one line: the node, the op, why)."""


CONV_OPS = {aten.conv2d.default, aten.conv2d.padding,     # .padding: padding="same" / "valid"
            aten.conv1d.default, aten.conv1d.padding}     # a conv1d goes onto tiles as a conv2d of height 1
LINEAR_OPS = {aten.linear.default}
#: products with a constant weight matrix written without nn.Linear, that go onto tiles as linear layers: op ->
#: (the input's argument, the weight's, the bias's or None); their weight is (K, C), the transpose of a linear's.
#: ``addmm`` is HuggingFace GPT-2's ``Conv1D`` (``addmm(bias, x.view(-1, nx), weight)``), ``matmul`` ``x @ W``.
MATMUL_OPS = {aten.addmm.default: (1, 2, 0), aten.matmul.default: (0, 1, None), aten.mm.default: (0, 1, None)}
BN_OPS = {aten.batch_norm.default, aten._native_batch_norm_legit_no_training.default}
RELU_OPS = {aten.relu.default, aten.relu_.default}
# codes -> codes of the same step (see the module docstring)
GRID_OPS = {aten.max_pool2d.default, aten.max_pool1d.default, aten.dropout.default, aten.flatten.using_ints,
            aten.view.default, aten.reshape.default, aten._unsafe_view.default, aten.squeeze.dim,
            aten.squeeze.default, aten.unsqueeze.default, aten.clone.default, aten.alias.default,
            aten.contiguous.default, aten.detach.default, *RELU_OPS}


class AtenOp:
    """An ATen overload kept by its name (``aten.conv2d.default``): callable like the op, and picklable
    (an ``OpOverload`` is not), so a parsed network can go to Dask workers."""

    def __init__(self, qualname: str) -> None:
        self.qualname = qualname
        self._op = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._op is None:
            ns, name, overload = self.qualname.split(".")
            self._op = getattr(getattr(getattr(torch.ops, ns), name), overload)
        return self._op(*args, **kwargs)

    def __getstate__(self) -> dict:
        return {"qualname": self.qualname, "_op": None}

    def __str__(self) -> str:
        return self.qualname

    __repr__ = __str__


def _portable(target: Any) -> Any:
    return AtenOp(str(target)) if isinstance(target, torch._ops.OpOverload) else target


def op_name(target: Any) -> str:
    """``aten.conv2d`` for an ATen overload, the function's name otherwise."""
    if isinstance(target, torch._ops.OpOverload):
        return f"aten.{target._schema.name.split('::')[-1]}"
    if isinstance(target, AtenOp):
        return ".".join(target.qualname.split(".")[:2])
    return getattr(target, "__name__", str(target))


@dataclass
class LayerSpec:
    """One conv2d/conv1d/linear (or a product on a constant weight, as a linear) with its folded batch norm and ReLU.

    Attributes
    ----------
    name : str
        The module path of the conv/linear (``layer1.0.conv1``), or the graph node's name for a
        functional call at the root.
    index : int
        Position among the network's layers (the seed of its noise draws).
    kind : {"conv", "linear"}
    weight, bias : Tensor
        The conv/linear weight and bias (bias ``None`` when there is none).
    stride, padding : tuple
        Convolution geometry (zero padding).
    g, h : Tensor or None
        The folded eval-mode batch norm ``bn(z) = g * z + h`` (``None``: no batch norm).
    relu : bool
    digital : bool
        Kept digital (float32), and ``why``.
    calls : list
        The ATen calls of the fused nodes, ``(op, args, kwargs)`` with the layer input as
        :data:`INPUT`: the digital layer runs exactly these.
    """

    name: str
    index: int
    kind: str
    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    g: torch.Tensor | None = None
    h: torch.Tensor | None = None
    relu: bool = False
    calls: list = field(default_factory=list)
    digital: bool = False
    why: str = ""
    problem: str = ""            # why it cannot be analog ("" if it can)
    #: a linear layer's input rows: the leading axes they are made of (-1: the samples') and which is the
    #: samples'; ``lead`` None: the input's own leading axes (see :func:`_sample_axes`)
    lead: tuple[int, ...] | None = None
    batch_dim: int = 0
    op: str = ""
    #: a weight used by several ops (an RNN's recurrent matrix at every time step, a weight applied twice):
    #: one matrix on the tiles, programmed and calibrated once. ``shares`` is the first use's spec (the layer
    #: of :attr:`Graph.layers`; None for that one), ``use`` this use's number (0 for the first), ``uses`` on the
    #: first the number of uses. A use-site's spec has its own input geometry (``lead``, ``batch_dim``).
    shares: "LayerSpec | None" = None
    use: int = 0
    uses: int = 1
    weight_name: str = ""        # the weight constant's name in the program (``lstm.weight_hh_l0``)

    @property
    def owner(self) -> "LayerSpec":
        """The layer whose tiles this use runs on (itself unless it shares another's weight)."""
        return self.shares if self.shares is not None else self

    @property
    def is_conv(self) -> bool:
        return self.kind == "conv"

    @property
    def one_d(self) -> bool:
        """A conv1d: on the tiles a conv2d of kernel height 1 over inputs of height 1."""
        return self.is_conv and self.weight.ndim == 3

    @property
    def kernel_size(self) -> tuple[int, int]:
        if not self.is_conv:
            return ()
        return (1, int(self.weight.shape[2])) if self.one_d else tuple(self.weight.shape[2:4])

    @property
    def inputs(self) -> int:
        """K: the rows of the weight matrix (im2col order for convolutions)."""
        return int(self.weight[0].numel())

    @property
    def outputs(self) -> int:
        """C: the columns."""
        return int(self.weight.shape[0])

    def matrix(self) -> torch.Tensor:
        """The weight as (inputs, outputs), float64 (im2col order for convolutions)."""
        w = self.weight.detach().double()
        return w.reshape(w.shape[0], -1).t().contiguous()

    def bias64(self) -> torch.Tensor:
        return (torch.zeros(self.outputs, dtype=torch.float64) if self.bias is None
                else self.bias.detach().double())

    def bn_fold(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(g, h)`` with ``bn(z) = g * z + h`` (ones and zeros without batch norm)."""
        if self.g is None:
            return torch.ones(self.outputs, dtype=torch.float64), torch.zeros(self.outputs, dtype=torch.float64)
        return self.g, self.h

    def digital_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The fused ATen calls on ``x`` in float32: what the float model computes for this layer."""
        y = x.float()
        for fn, args, kwargs in self.calls:
            y = fn(*[y if a is INPUT else a for a in args], **kwargs)
            if isinstance(y, tuple):          # _native_batch_norm_legit_no_training: (out, mean, rstd)
                y = y[0]
        return y


class _Input:
    """The place of a fused call's input (one object, also after unpickling)."""

    def __repr__(self) -> str:
        return "INPUT"

    def __reduce__(self) -> str:
        return "INPUT"


INPUT = _Input()


@dataclass
class Ref:
    """An argument that is the value of another step."""

    name: str


@dataclass
class Step:
    """One node of the graph in execution order.

    ``kind`` is ``input``, ``layer`` (``spec``), ``grid``, ``op`` or ``output``; ``fn(*args, **kwargs)``
    with :class:`Ref` arguments replaced by the values of earlier steps.
    """

    name: str
    kind: str
    fn: Callable | None = None
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    spec: LayerSpec | None = None
    path: str = ""

    @property
    def refs(self) -> list[str]:
        out: list[str] = []

        def walk(v: Any) -> None:
            if isinstance(v, Ref):
                out.append(v.name)
            elif isinstance(v, (list, tuple)):
                for u in v:
                    walk(u)
            elif isinstance(v, dict):
                for u in v.values():
                    walk(u)
        walk(self.args)
        walk(self.kwargs)
        return out


@dataclass
class Graph:
    """The parsed network: steps in execution order, the layers among them, the float model."""

    steps: list[Step]
    layers: list[LayerSpec]
    module: nn.Module

    def ops(self) -> list[Step]:
        """The steps that run digitally in float32 outside any layer (``op``)."""
        return [s for s in self.steps if s.kind == "op"]


def export_model(model: Any, example: torch.Tensor) -> nn.Module:
    """The model's ATen graph module: ``ep.module()`` of an ``ExportedProgram``, or of ``model`` exported
    here with a dynamic batch dimension (eval mode, on a copy of nothing: export does not change the model).

    An ``nn.Module``'s program is kept (:data:`_EXPORTS`) and used again for the same model object while
    what it shows is unchanged (:func:`_fingerprint`: its modules, their attributes, parameters, buffers and
    hooks, the input's shape) and it still computes exactly what the model computes on ``example``; else it is
    traced again. A forward that reads state outside the model and changes it between builds (a global flag
    that does not change the result on ``example``) is the one case this cannot see: export such a model
    yourself and pass the ``ExportedProgram``.
    """
    if isinstance(model, torch.export.ExportedProgram):
        return _unrolled(model).module()
    if not isinstance(model, nn.Module):
        raise GraphError(f"network: expected an nn.Module or a torch.export ExportedProgram, got {type(model).__name__}")
    example = example.float() if example.is_floating_point() else example
    was_training = model.training
    model.eval()
    try:
        key = _fingerprint(model, example)
        kept = _EXPORTS.get(model)
        if kept is not None and kept[0] == key:
            gm = kept[1].module()
            with torch.no_grad():
                if _same(gm(example), model(example)):
                    return gm
        try:
            ep = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
        except Exception as e:               # untraceable: data-dependent control flow, unsupported ops, ...
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            raise GraphError(f"network: the model does not export with torch.export ({type(e).__name__}: "
                             f"{first[:200]})") from None
        ep = _unrolled(ep)
        _EXPORTS[model] = (key, ep)
    finally:
        model.train(was_training)
    return ep.module()


#: model -> (its fingerprint when exported, the ExportedProgram); an entry goes with its model
_EXPORTS: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple, torch.export.ExportedProgram]]" = \
    weakref.WeakKeyDictionary()
_PLAIN = (int, float, bool, str, bytes, type(None), torch.dtype, torch.device)


def _freeze(v: Any) -> Any:
    """A comparable snapshot of an attribute: plain values as they are, tensors by identity, version (in-place
    changes), shape and dtype, containers element by element, anything else (functions, objects) by identity."""
    if isinstance(v, _PLAIN):
        return v
    if isinstance(v, torch.Tensor):
        return ("tensor", id(v), v._version, tuple(v.shape), v.dtype)
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, *(_freeze(u) for u in v))
    if isinstance(v, dict):
        return ("dict", *((_freeze(k), _freeze(u)) for k, u in v.items()))
    if isinstance(v, (set, frozenset)):
        return ("set", *sorted(repr(_freeze(u)) for u in v))
    return (type(v).__qualname__, id(v))


#: recurrent layers, written as one fused ATen op: unrolled into their time steps (:func:`_unrolled`)
RNN_OPS = ("lstm.input", "gru.input", "rnn_tanh.input", "rnn_relu.input")
_UNROLLED: "weakref.WeakKeyDictionary[torch.export.ExportedProgram, torch.export.ExportedProgram]" = \
    weakref.WeakKeyDictionary()


def _unrolled(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """``ep`` with its recurrent layers (``aten.lstm``, ``aten.gru``, ``aten.rnn_tanh``/``rnn_relu``) unrolled by
    PyTorch's own decomposition: per layer one ``linear`` of the input matrix over every time step, and per
    time step one ``linear`` of the recurrent matrix on the previous hidden state, with the gates, the cell
    state and their nonlinearities as float ops (as AIHWKit's analog LSTM places them). Other ops are kept as
    they are; a program without recurrent layers is returned unchanged. Kept per program."""
    ops = {getattr(getattr(aten, n.split(".")[0]), n.split(".")[1]) for n in RNN_OPS}
    if not any(n.op == "call_function" and n.target in ops for n in ep.graph.nodes):
        return ep
    if ep not in _UNROLLED:
        from torch._decomp import get_decompositions
        _UNROLLED[ep] = ep.run_decompositions(get_decompositions(list(ops)))
    return _UNROLLED[ep]


def _fingerprint(model: nn.Module, example: torch.Tensor) -> tuple:
    """What an export of ``model`` on ``example`` depends on, as far as the objects show it: every module's
    class and attributes (parameters, buffers and hooks among them; ``training`` aside, export runs in eval
    mode), torch's global module hooks, the example's shape past the batch and its dtype."""
    from torch.nn.modules import module as mod
    glob = tuple(_freeze(getattr(mod, n)) for n in dir(mod) if n.startswith("_global_") and n.endswith("hooks"))
    mods = tuple((name, type(m), _freeze({k: v for k, v in vars(m).items() if k != "training"}))
                 for name, m in model.named_modules(remove_duplicate=False))
    return (tuple(example.shape[1:]), example.dtype, glob, mods)


def _same(a: Any, b: Any) -> bool:
    """Exactly equal outputs (tensors bit for bit, NaN equal to NaN; containers element by element)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)) \
            and torch.equal(a.isnan(), b.isnan())
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    return type(a) is type(b) and not isinstance(a, torch.Tensor) and a == b


def _first_export() -> None:
    """torch.export's first trace in a process sets up its machinery (~0.3 s): :func:`export_model` runs once at
    import on a tiny model, so that the first network build does not pay it. The global random state is left as
    it was, and a failure here changes nothing (the real export reports its own errors)."""
    try:
        with torch.random.fork_rng(devices=[]):
            m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
            export_model(m, torch.zeros(2, 1, 4, 4))
    except Exception:       # pragma: no cover - a warm-up only
        pass


_first_export()


def _path(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


def _attr(gm: nn.Module, node: Any) -> torch.Tensor | None:
    if node is None:
        return None
    if not (isinstance(node, torch.fx.Node) and node.op == "get_attr"):
        return None
    return reduce(getattr, node.target.split("."), gm).detach()


def _consts(gm: nn.Module, v: Any, where: str) -> Any:
    """``v`` with its get_attr nodes replaced by their tensors (a fused call's arguments are constants)."""
    if isinstance(v, torch.fx.Node):
        t = _attr(gm, v)
        if t is None:
            raise GraphError(f"network: {where}: argument {v.name} is computed, not a constant; cannot be folded")
        return t
    if isinstance(v, (list, tuple)):
        return type(v)(_consts(gm, u, where) for u in v)
    return v


def _only_user(node: torch.fx.Node) -> torch.fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _norm_args(node: torch.fx.Node) -> dict[str, Any]:
    """The node's arguments by schema name, with the schema's defaults."""
    schema = node.target._schema
    out = {}
    for i, a in enumerate(schema.arguments):
        if i < len(node.args):
            out[a.name] = node.args[i]
        elif a.name in node.kwargs:
            out[a.name] = node.kwargs[a.name]
        elif a.has_default_value():
            out[a.name] = a.default_value
    return out


def _conv_padding(padding: Any, dilation: Any, kernel: tuple[int, int]) -> tuple[int, int] | None:
    """The zero padding of a conv2d of kernel ``kernel``, also for ``padding="valid"`` / ``"same"``;
    None when ``"same"`` pads one side more than the other (an even kernel extent)."""
    if not isinstance(padding, str):
        return _pair(padding)
    if padding == "valid":
        return (0, 0)
    total = [d * (k - 1) for d, k in zip(_pair(dilation), kernel)]
    return None if any(t % 2 for t in total) else (total[0] // 2, total[1] // 2)


def _pair(v: Any) -> tuple[int, int]:
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return (int(v[0]), int(v[-1]))


def parse(model: Any, example: torch.Tensor) -> Graph:
    """The :class:`Graph` of ``model`` (an ``nn.Module`` or an ``ExportedProgram``); see the module docstring."""
    gm = export_model(model, example)
    nodes = [n for n in gm.graph.nodes if not (n.op == "call_module" and str(n.target).startswith("_guards"))]
    fused: dict[torch.fx.Node, str] = {}        # fused BN/ReLU node -> the layer step's name
    steps: list[Step] = []
    layers: list[LayerSpec] = []
    alias: dict[str, str] = {}                  # node name -> the step that produces its value
    shared: dict[tuple, LayerSpec] = {}         # a weight's constants and op -> the layer that holds it

    def conv(v: Any) -> Any:
        if isinstance(v, torch.fx.Node):
            return Ref(alias.get(v.name, v.name))
        if isinstance(v, (list, tuple)):
            return type(v)(conv(u) for u in v)
        if isinstance(v, dict):
            return {k: conv(u) for k, u in v.items()}
        return v

    for node in nodes:
        if node in fused:
            alias[node.name] = fused[node]
            continue
        if node.op == "placeholder":
            if steps and steps[0].kind == "input":
                raise GraphError(f"network: the model takes more than one input ({node.name}); one tensor is expected")
            steps.append(Step(node.name, "input"))
            continue
        if node.op == "get_attr":
            steps.append(Step(node.name, "const", fn=None, args=(_attr(gm, node),)))
            continue
        if node.op == "output":
            outs = node.args[0]
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            if len(outs) != 1:
                raise GraphError(f"network: the model returns {len(outs)} values; one tensor is expected")
            steps.append(Step(node.name, "output", args=(conv(outs[0]),)))
            continue
        if node.op != "call_function":
            raise GraphError(f"network: {_path(node) or node.name}: {node.op} {node.target}: not an ATen call, "
                             f"cannot be mapped")
        path = _path(node)
        name = op_name(node.target)
        if "val" not in node.meta and node.target is not operator.getitem:
            raise GraphError(f"network: {path or node.name} ({name}): its output shape cannot be determined")
        if _is_layer(gm, node):
            spec = _layer(gm, node, len(layers), fused)
            key = _weight_key(node)
            owner = shared.get(key)
            if owner is not None and _same_layer(owner, spec):
                spec.shares, spec.index, spec.use = owner, owner.index, owner.uses
                owner.uses += 1
            else:
                layers.append(spec)
                shared[key] = spec
            i = MATMUL_OPS[node.target][0] if node.target in MATMUL_OPS else 0
            steps.append(Step(node.name, "layer", args=(conv(node.args[i]),), spec=spec, path=path))
            continue
        kind = "grid" if node.target in GRID_OPS else "op"
        steps.append(Step(node.name, kind, fn=_portable(node.target), args=conv(tuple(node.args)),
                          kwargs=conv(dict(node.kwargs)), path=path))
    _name_layers(layers, steps)
    if not layers:
        raise GraphError("network: the model has no conv2d or linear layer on constant weights")
    return Graph(steps, layers, gm)


def _is_layer(gm: nn.Module, node: torch.fx.Node) -> bool:
    """A conv/linear on a constant weight, or a product with a constant 2-D weight matrix (:data:`MATMUL_OPS`)
    on the input, with a constant bias (if any) and no scaling (``addmm``'s ``beta``, ``alpha`` of 1)."""
    if node.target in CONV_OPS | LINEAR_OPS:
        return _attr(gm, node.args[1]) is not None
    if node.target not in MATMUL_OPS:
        return False
    i, w, b = MATMUL_OPS[node.target]
    weight = _attr(gm, node.args[w]) if len(node.args) > w else None
    if weight is None or weight.ndim != 2 or _attr(gm, node.args[i]) is not None:
        return False
    if b is not None and _attr(gm, node.args[b]) is None:
        return False
    return all(float(node.kwargs.get(k, 1)) == 1.0 for k in ("beta", "alpha"))


def _weight_key(node: torch.fx.Node) -> tuple:
    """What makes two layer nodes the same matrix on the tiles: the op and its constant weight and bias."""
    if node.target in MATMUL_OPS:
        _, w, b = MATMUL_OPS[node.target]
        consts = (node.args[w], node.args[b] if b is not None else None)
    else:
        a = _norm_args(node)
        consts = (node.args[1], a.get("bias"))
    return (str(node.target), *(c.target if isinstance(c, torch.fx.Node) else c for c in consts))


def _same_layer(a: LayerSpec, b: LayerSpec) -> bool:
    """Two uses of one weight that compute the same columns (geometry, fused batch norm and ReLU): one layer."""
    same_bn = (a.g is None and b.g is None) or (a.g is not None and b.g is not None and torch.equal(a.g, b.g)
                                                 and torch.equal(a.h, b.h))
    return (a.kind == b.kind and a.weight.shape == b.weight.shape and a.stride == b.stride
            and a.padding == b.padding and a.relu == b.relu and same_bn and a.problem == b.problem)


def _layer(gm: nn.Module, node: torch.fx.Node, index: int, fused: dict) -> LayerSpec:
    """The layer of a conv/linear/product node, with the BN and ReLU that alone consume it (marked in ``fused``)."""
    path = _path(node)
    op = op_name(node.target)
    w_node = node.args[MATMUL_OPS[node.target][1] if node.target in MATMUL_OPS else 1]
    if node.target in MATMUL_OPS:
        i, w, b = MATMUL_OPS[node.target]
        a = {}
        weight = _attr(gm, node.args[w]).t()             # (K, C) -> a linear's (C, K)
        bias = _attr(gm, node.args[b]) if b is not None else None
        args = [INPUT if k == i else _consts(gm, v, path) for k, v in enumerate(node.args)]
        spec = LayerSpec(name=path, index=index, kind="linear", weight=weight, bias=bias, op=op,
                         calls=[(_portable(node.target), tuple(args), dict(node.kwargs))])
        inp = node.args[i]
    else:
        a = _norm_args(node)
        weight, bias = _attr(gm, node.args[1]), _attr(gm, a.get("bias"))
        spec = LayerSpec(name=path, index=index, kind="conv" if node.target in CONV_OPS else "linear", weight=weight,
                         bias=bias, op=op, calls=[(_portable(node.target), (INPUT, *_consts(gm, node.args[1:], path)),
                                                   dict(node.kwargs))])
        inp = node.args[0]
    spec.weight_name = str(w_node.target)
    is_conv = spec.is_conv
    if is_conv:
        if weight.ndim == 3:     # conv1d: the 1-D geometry as a conv2d's of height 1
            a = {**a, "stride": [1, *a["stride"]], "dilation": [1, *a["dilation"]],
                 "padding": a["padding"] if isinstance(a["padding"], str) else [0, *a["padding"]]}
        spec.stride, spec.padding = _pair(a["stride"]), _conv_padding(a["padding"], a["dilation"], spec.kernel_size)
        if spec.padding is None:
            spec.padding = (0, 0)
            spec.problem = "padding='same' with an even kernel (zero padding on one side only)"
        elif int(a["groups"]) != 1:
            spec.problem = f"grouped convolution (groups={int(a['groups'])})"
        elif _pair(a["dilation"]) != (1, 1):
            spec.problem = f"dilated convolution (dilation={list(a['dilation'])})"
    else:
        shape = inp.meta["val"].shape if "val" in inp.meta else None
        if shape is None or len(shape) < 2:
            spec.problem = ("its input shape is unknown" if shape is None else "its input has one dimension") + \
                "; the tiles take vectors (samples, or samples x tokens)"
    # a batch norm folds into a layer's columns only where its channels are the layer's outputs: a conv2d's
    # channels, a linear layer's features on (N, F); after a token-wise linear (N, T, F) batch norm's axis 1
    # is the tokens, so it stays an op of its own
    token_wise = not is_conv and (shape is None or len(shape) > 2)
    if not is_conv and shape is not None:
        spec.lead, spec.batch_dim = _sample_axes(inp)
    tail = node
    user = _only_user(tail)
    if (user is not None and user.op == "call_function" and user.target in BN_OPS and user.args[0] is tail
            and not token_wise):
        b = _norm_args(user)
        training = b.get("training", False)
        if not training and all(_attr(gm, b[k]) is not None for k in ("running_mean", "running_var")):
            w, bb = _attr(gm, b.get("weight")), _attr(gm, b.get("bias"))
            inv = 1.0 / torch.sqrt(_attr(gm, b["running_var"]).double() + float(b["eps"]))
            g = inv * (w.double() if w is not None else 1.0)
            spec.g = g
            spec.h = (bb.double() if bb is not None else 0.0) - _attr(gm, b["running_mean"]).double() * g
            spec.calls.append((_portable(user.target), (INPUT, *_consts(gm, user.args[1:], path)),
                               dict(user.kwargs)))
            fused[user] = node.name
            tail = user
            if user.target is aten._native_batch_norm_legit_no_training.default:
                get0 = [u for u in user.users if u.target is operator.getitem and u.args[1] == 0]
                if len(get0) != 1 or len(user.users) != len(get0) + sum(1 for u in user.users if not u.users):
                    raise GraphError(f"network: {path or user.name} ({op_name(user.target)}): batch-norm "
                                     f"statistics are used outside the layer; cannot be folded")
                for u in user.users:
                    fused[u] = node.name
                tail = get0[0]
    user = _only_user(tail)
    if user is not None and user.op == "call_function" and user.target in RELU_OPS and user.args[0] is tail:
        spec.relu = True
        spec.calls.append((_portable(user.target), (INPUT,), {}))
        fused[user] = node.name
    return spec


_VIEWS = {aten.view.default, aten.reshape.default, aten._unsafe_view.default, aten.flatten.using_ints}


def _is_batch(d: Any) -> bool:
    """The exported program's dynamic batch size itself (a bare symbol), not a product of it."""
    return not isinstance(d, int) and getattr(getattr(d, "node", None), "expr", None) is not None \
        and d.node.expr.is_Symbol


def _sample_axes(inp: torch.fx.Node) -> tuple[tuple[int, ...] | None, int]:
    """How a linear layer's input rows are made: ``(None, i)`` when axis ``i`` of its input is the samples'
    (a transformer's (N, T, F), or the (T, N, F) of an attention with ``batch_first=True``); ``(lead, i)``
    when the input is a flattened view of a tensor of leading axes ``lead`` (-1 for the samples', axis
    ``i``), as attention's output projection takes ``(T * N, F)``. The tiles' rows then go sample-major,
    so a sample's rows and the noise drawn for them do not depend on the batch. ``(None, 0)`` when no
    axis is found (a static batch)."""
    shape = inp.meta["val"].shape
    axes = [i for i, d in enumerate(shape[:-1]) if _is_batch(d)]
    if len(axes) == 1:
        return None, axes[0]
    node = inp
    while node.op == "call_function" and node.target in _VIEWS and isinstance(node.args[0], torch.fx.Node) \
            and "val" in node.args[0].meta:
        node = node.args[0]
        src = node.meta["val"].shape
        # the source's trailing axes that make the features (F = 4 heads x 8), and the leading ones the rows
        k, feat = len(src), 1
        while k > 0 and isinstance(src[k - 1], int) and feat < shape[-1]:
            k, feat = k - 1, feat * int(src[k - 1])
        lead = src[:k]
        axes = [i for i, d in enumerate(lead) if _is_batch(d)]
        if feat == shape[-1] and len(axes) == 1 and all(isinstance(d, int) for i, d in enumerate(lead)
                                                        if i != axes[0]):
            return tuple(-1 if i == axes[0] else int(d) for i, d in enumerate(lead)), axes[0]
    return None, 0


_RNN_WEIGHT = re.compile(r"(.*\.)?weight_(ih|hh)_l\d+(_reverse)?")


def _name_layers(layers: list[LayerSpec], steps: list[Step]) -> None:
    """Module paths as names; a path shared by several layers (functional calls in one forward) or the
    root's empty path gets the graph node's name, and a recurrent layer's matrix its weight's name
    (``lstm.weight_ih_l0``, ``lstm.weight_hh_l0``: PyTorch's names of an RNN's input and recurrent matrices)."""
    by_path: dict[str, int] = {}
    for l in layers:
        by_path[l.name] = by_path.get(l.name, 0) + 1
    node_of = {s.spec.index: s.name for s in reversed(steps) if s.kind == "layer"}   # the first use's node
    for l in layers:
        if _RNN_WEIGHT.fullmatch(l.weight_name):
            l.name = l.weight_name
        elif not l.name or by_path[l.name] > 1:
            l.name = f"{l.name}.{node_of[l.index]}" if l.name else node_of[l.index]
    for s in steps:
        if s.kind == "layer" and s.spec.shares is not None:
            s.spec.name = s.spec.shares.name
