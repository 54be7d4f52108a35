"""Simulation on the host: the simulators' toolchain and lint (:mod:`.toolchain`), one build and one testbench
runner for both units (:mod:`.runner`), the bulk C++ harness (:mod:`.bulk`), layer stimulus files
(:mod:`.layer_stream`), the cocotb mode of a layer (:mod:`.cocotb_mode`) and the network with the RTL in the
loop (:mod:`.network`). What runs inside the simulator is :mod:`.tb`.

Imports :mod:`rtl` and :mod:`nmpu_model`, never :mod:`cosim.synth` or :mod:`cosim.report`.
"""
