"""Studies that combine simulation (:mod:`cosim.sim`) and synthesis (:mod:`cosim.synth`), with typed results.

The one room allowed to import both: a command parses, calls a study and prints what :mod:`cosim.report`
renders from the result.
"""
