"""Amaranth RTL of the NMPU (widths from ``nmpu_model.golden.config``; no other model imports)."""
from .nmpu import NMPU, Interface, interface, latency

__all__ = ["NMPU", "Interface", "interface", "latency"]
