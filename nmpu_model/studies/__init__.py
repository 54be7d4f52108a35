"""The studies over a workload: accuracy against drift (:mod:`.evaluate`), precision sweeps and per-layer
sensitivity (:mod:`.sweep`). A new study goes here."""
