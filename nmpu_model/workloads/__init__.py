"""The workloads: the built-in networks (:mod:`.models`), their data sets (:mod:`.datasets`) and the one
registry a command line names them by (:mod:`.registry`). A new network or data set goes here."""
