"""The network and data options that ``nmpu eval``, ``sweep`` and ``cosim`` share, and the layer table they print."""
from __future__ import annotations

import argparse
import sys
from typing import Any

MODEL_HELP = ("a built-in network (digits-cnn: the default, scikit-learn digits; mnist-resnet: a ResNet on 5,000 "
              "real MNIST images; char-gpt: a 4-block character-level GPT on King James Bible text, scored by "
              "perplexity; resnet9: CIFAR-10 from --data) "
              "or a .pt2 file written by torch.export.save with a dynamic batch dimension, or an .onnx model "
              "(converted by onnx2torch), with --data FILE.npz")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="digits-cnn", metavar="NAME|FILE.pt2|FILE.onnx", help=MODEL_HELP)
    p.add_argument("--data", metavar="PATH", help="with a .pt2 model: an .npz file holding x (N x C x H x W or "
                   "N x F float32), y (N integer labels) and optionally calib (calibration inputs; without it the "
                   "first images of x calibrate and are kept out of the test); resnet9: the CIFAR-10 binary folder")
    p.add_argument("--weights", metavar="PT", help="resnet9 only: a trained state dict (else trained on --data)")
    p.add_argument("--images", type=int, metavar="N", help="the first N test images only")
    p.add_argument("--digital", metavar="NAME,...", help="layers kept digital, by name as the layer table "
                   "shows them, or first/last (default: first,last); 'none': every layer analog")
    p.add_argument("--device", default="pcm", metavar="MODEL",
                   help="the tiles' device model: pcm (AIHWKit PCMLikeNoiseModel, the default), hermes (AIHWKit "
                   "HermesNoiseModel, HERMES-fitted PCM, two devices per conductance), hermes-1 (one device), rram, or "
                   "a characterisation file FILE.csv/.json; parameters after a colon (rram:levels=16,p_stuck_on=0.01); "
                   "docs/devices.md; `nmpu devices` compares them")
    p.add_argument("--compensation", default="global", metavar="KIND",
                   help="drift compensation: global (one factor per layer, the layer read with an all-ones input; the "
                   "default), global-onehot (one factor per layer read with one-hot inputs, as AIHWKit's "
                   "GlobalDriftCompensation) or column (one factor per output column, AIHWKit's "
                   "PerColumnDriftCompensation)")


def add_mapping_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mapping", metavar="FILE", help="a layer mapping (written by `nmpu map`, or by hand: JSON or TOML "
                   "with [base], the NMPU configuration, and [layers], layer -> digital | fp16 | fixed | "
                   "fixed[scale.bits=4,...]): every layer where the file says, instead of --config and --digital")


def digital_layers(text: str | None) -> tuple[str, ...] | None:
    """``--digital``: None (the default), () for 'none', else the names."""
    from nmpu_model.workloads.registry import digital_names
    return digital_names(text)


def load(args: argparse.Namespace, tile: Any = None, progress: bool = False) -> Any:
    """The workload of the options, its layer table (``work.table``) and analog layer names (``work.analog``).

    Nothing is printed: a command checks the rest of its input first, then :func:`show` prints the table,
    so a bad argument is still one line.
    """
    from nmpu_model.workloads.registry import load_workload
    from nmpu_model.network.analog_network import mapping

    if args.images is not None and args.images < 1:
        raise ValueError(f"--images must be >= 1, not {args.images}")
    layer_map = None
    if getattr(args, "mapping", None):
        from nmpu_model.studies.mapping import load_mapping
        if args.digital is not None:
            raise ValueError("--mapping names the digital layers itself: drop --digital")
        if getattr(args, "config", None):
            raise ValueError("--mapping carries its NMPU configuration (its [base]): drop --config")
        layer_map = load_mapping(args.mapping)
    work = load_workload(args.model, args.data, args.images, getattr(args, "weights", None), progress=progress,
                         digital=digital_layers(args.digital), device=args.device, compensation=args.compensation)
    work.layer_map = layer_map
    if layer_map is not None:
        from nmpu_model.network.graph import parse
        specs = parse(work.model, work.x_cal[:2]).layers
        try:
            layer_map.check([l.name for l in specs if not l.problem])
        except ValueError as e:
            raise ValueError(f"{args.mapping}: {e}") from None
        work.digital = layer_map.digital(l.name for l in specs if l.problem)
    work.table, work.analog, work.mapping = mapping(work.model, work.x_cal, tile, work.digital)  # refusals stop here
    if not work.analog:                      # nothing on tiles: the one-line refusal, before the table is printed
        from nmpu_model.network.analog_network import check_on_tiles
        check_on_tiles(work.model, work.x_cal, work.digital)
    return work


def show(work: Any) -> None:
    """The workload's size, layer table and where its calibration images came from, on stderr."""
    what = work.metric.samples
    print(f"{work.name}: {len(work.y_test)} test {what}, {len(work.x_cal)} calibration {what}; metric: "
          f"{work.metric.name}; tiles: {work.describe_tiles()}", file=sys.stderr)
    print(work.table, file=sys.stderr)
    if getattr(work, "layer_map", None) is not None:
        print("mapping: " + ", ".join(f"{n} {c.label}" for n, c in work.layer_map.layers), file=sys.stderr)
    if work.note:
        print(work.note, file=sys.stderr)
