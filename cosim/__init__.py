"""cosim: where the golden model and the RTL meet (build, simulate, compare, synthesize)."""
