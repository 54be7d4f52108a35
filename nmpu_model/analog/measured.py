"""A device model from the user's own characterisation: a table of statistics against conductance, interpolated.

The file (CSV with a header line, or JSON) holds, at increasing conductances ``g_us`` (uS), the programming-noise
std ``prog_std_us`` (uS), the drift exponent's mean ``nu_mean`` and std ``nu_std``, and the 1/f read-noise factor
``q_s`` (of the programmed conductance). Between the points the statistics are interpolated linearly (``numpy.interp``),
beyond them held at the end values. The model then programs and reads as every device model does
(:mod:`nmpu_model.analog.devices`): ``nu = |N(nu_mean, nu_std)|`` from the target, read noise
``q_s sqrt(ln((t + t0 + t_read) / (2 t_read)))``. ``g_max`` (the conductance of the largest weight) defaults to the
largest ``g_us``; ``t0`` (20 s) and ``t_read`` (250 ns) to the PCM fit's; all three can be given in a JSON file
(``{"g_max": ..., "t0": ..., "t_read": ..., "table": {column: [values]}}``) or after the file name
(``--device lab.csv:t0=300``).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..files import read_document, read_text
from .devices import DeviceModel

__all__ = ["MeasuredParams", "COLUMNS"]

#: the columns a characterisation file must have
COLUMNS = ("g_us", "prog_std_us", "nu_mean", "nu_std", "q_s")


@dataclass(frozen=True)
class MeasuredParams(DeviceModel):
    """A measured device: the characterisation table (tuples, one value per conductance) and the constants.
    Make it with :meth:`from_file`, or from the columns directly."""

    g_us: tuple[float, ...]
    prog_std_us: tuple[float, ...]
    nu_mean: tuple[float, ...]
    nu_std: tuple[float, ...]
    q_s: tuple[float, ...]
    g_max: float | None = None
    t0: float = 20.0
    t_read: float = 250e-9
    source: str = "table"

    name = "measured"

    def __post_init__(self) -> None:
        cols = {c: getattr(self, c) for c in COLUMNS}
        n = len(self.g_us)
        for c, v in cols.items():
            if len(v) != n:
                raise ValueError(f"{self.source}: column {c} has {len(v)} values, g_us has {n}")
            if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in v):
                bad = next(i for i, x in enumerate(v) if not (isinstance(x, (int, float)) and math.isfinite(x)))
                raise ValueError(f"{self.source}: {c}[{bad}] = {v[bad]!r} is not a finite number")
            object.__setattr__(self, c, tuple(float(x) for x in v))
        if n < 2:
            raise ValueError(f"{self.source}: at least 2 conductances are needed, not {n}")
        g = np.array(self.g_us)
        if not (np.diff(g) > 0).all():
            i = int(np.argmax(np.diff(g) <= 0))
            raise ValueError(f"{self.source}: g_us must increase, but g_us[{i + 1}] = {g[i + 1]:g} follows {g[i]:g}")
        if g[0] < 0:
            raise ValueError(f"{self.source}: g_us[0] = {g[0]:g} is negative")
        for c in ("prog_std_us", "nu_mean", "nu_std", "q_s"):
            v = np.array(getattr(self, c))
            if (v < 0).any():
                i = int(np.argmax(v < 0))
                raise ValueError(f"{self.source}: {c}[{i}] = {v[i]:g} is negative")
        if self.g_max is None:
            object.__setattr__(self, "g_max", float(g[-1]))
        self.check()

    @classmethod
    def from_file(cls, path: str | Path, **kw) -> "MeasuredParams":
        """Read a CSV or JSON characterisation file (see the module docstring); bad input is one line."""
        p = Path(path)
        meta: dict = {}
        if p.suffix.lower() == ".json":
            doc = read_document(p, "JSON")
            if not isinstance(doc, dict) or not isinstance(doc.get("table"), dict):
                raise ValueError(f"{p}: expected an object with a \"table\" of columns {', '.join(COLUMNS)}")
            table = doc["table"]
            meta = {k: doc[k] for k in ("g_max", "t0", "t_read") if k in doc}
        else:
            text = read_text(p, "CSV")
            rows = list(csv.reader(line for line in text.splitlines() if line.strip() and not line.startswith("#")))
            if not rows:
                raise ValueError(f"{p}: empty; expected a header line with {', '.join(COLUMNS)}")
            head = [h.strip() for h in rows[0]]
            table = {}
            for j, h in enumerate(head):
                col = []
                for i, r in enumerate(rows[1:], 2):
                    try:
                        col.append(float(r[j]))
                    except (IndexError, ValueError):
                        raise ValueError(f"{p}: line {i}, column {h}: {r[j] if j < len(r) else 'missing'!r} is "
                                         "not a number") from None
                table[h] = col
        missing = [c for c in COLUMNS if c not in table]
        if missing:
            raise ValueError(f"{p}: missing column(s) {', '.join(missing)} (needs {', '.join(COLUMNS)})")
        cols = {c: table[c] if isinstance(table[c], list) else [table[c]] for c in COLUMNS}
        return cls(**cols, **{**meta, **kw}, source=str(p))

    def _at(self, column: str, g_us: np.ndarray) -> np.ndarray:
        return np.interp(g_us, self.g_us, getattr(self, column))

    def prog_std(self, g: np.ndarray) -> np.ndarray:
        return self._at("prog_std_us", g * self.g_max)

    def drift_stats(self, g: np.ndarray, log_g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._at("nu_mean", g * self.g_max), self._at("nu_std", g * self.g_max)

    def read_noise_factor(self, g_prog: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._at("q_s", g_prog.abs().double().numpy())).float()

    def describe(self) -> str:
        return (f"measured: {self.source}, {len(self.g_us)} points {self.g_us[0]:g}..{self.g_us[-1]:g} uS, "
                f"g_max {self.g_max:g} uS, t0 {self.t0:g} s")
