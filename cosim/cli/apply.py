"""``nmpu apply``: run the golden model (or a floating-point baseline) on a file of ADC codes."""
from __future__ import annotations

import argparse
import zipfile

import numpy as np

from nmpu_model import apply, load_config
from nmpu_model.golden.datapath import ARITHS

from .io import check_parent, write_atomic


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apply", help="post-process ADC codes with the bit-accurate model or a float baseline",
                       description="Apply the NMPU datapath to CODES.npy (N x C integer ADC codes) with per-column "
                       "coefficients from COEFFS.npz and write OUT.npy (int64 output codes).")
    p.add_argument("--config", help="configuration TOML (default: the spec's defaults)")
    p.add_argument("--coeffs", required=True, help=".npz with scale, offset[, bn_scale, bn_offset][, out_frac]")
    p.add_argument("--codes", required=True, help=".npy integer array (N, C) of ADC codes")
    p.add_argument("--out", required=True, help="output .npy (written atomically)")
    p.add_argument("--arith", choices=ARITHS, default="fixed", help="fixed (default), fp16 or fp32")


def load_npy(path: str, what: str) -> np.ndarray:
    """Read a .npy without executing pickled objects; bad files give a one-line ValueError."""
    try:
        return np.load(path, allow_pickle=False)
    except (FileNotFoundError, IsADirectoryError):
        raise
    except ValueError as e:
        raise ValueError(f"{path}: {what} is not a plain numeric .npy ({e})") from None
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot read {what}: {e}") from None


def load_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError(f"{path}: expected an .npz archive of arrays")
            return {k: z[k] for k in z.files}
    except (FileNotFoundError, IsADirectoryError):
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        if isinstance(e, ValueError) and str(e).startswith(path):
            raise
        raise ValueError(f"{path}: cannot read coefficients: {e}") from None


def run(args: argparse.Namespace) -> int:
    check_parent(args.out, "--out")
    config = load_config(args.config)
    codes = load_npy(args.codes, "codes")
    coeffs = load_npz(args.coeffs)
    try:
        y = apply(codes, config, coeffs, arith=args.arith)
    except ValueError as e:
        where = args.codes if str(e).startswith("codes") else args.coeffs
        raise ValueError(f"{where}: {e}") from None
    write_atomic(args.out, lambda f: np.save(f, y), binary=True)
    return 0
