"""Synthesis: the Yosys flow and its reports (:mod:`.flow`: area, flip-flops, logic depth, the precision
and sweep area tables) and the cell library it maps onto (:mod:`.sky130`); timing, power and energy in a
library with timing and power (:mod:`.ppa` on :mod:`.osu018`, OpenSTA), from activity data it is handed.

Imports :mod:`rtl` and :mod:`nmpu_model`, never :mod:`cosim.sim` or :mod:`cosim.report`.
"""
