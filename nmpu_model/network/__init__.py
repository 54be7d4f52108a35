"""Any PyTorch network on tiles: the ATen graph (:mod:`.graph`), calibration's coefficients
(:mod:`.coefficients`) and the network run (:mod:`.analog_network`). A new network op goes in :mod:`.graph`."""
