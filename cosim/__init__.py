"""cosim: where the golden model and the RTL meet. Rooms (docs/architecture.md):

- :mod:`cosim.cli`: the ``nmpu`` command, one module per subcommand;
- :mod:`cosim.sim`: building and simulating the units (cocotb, Verilator, Icarus, the bulk harness);
- :mod:`cosim.synth`: synthesis and cell libraries;
- :mod:`cosim.report`: tables and plots.
"""
