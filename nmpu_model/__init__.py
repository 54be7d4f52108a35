"""nmpu_model: the bit-accurate golden model of the NMPU and everything numerical in Python."""
from .config import NMPUConfig, Plan, RTLParams, Span, load_config, set_field
from .datapath import apply, check_inputs
from .formats import OVERFLOW_MODES, ROUNDING_MODES, ConfigError, Fmt, quantize

__all__ = ["NMPUConfig", "Plan", "RTLParams", "Span", "load_config", "set_field", "apply", "check_inputs",
           "OVERFLOW_MODES", "ROUNDING_MODES", "ConfigError", "Fmt", "quantize"]
