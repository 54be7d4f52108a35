"""The golden model: the NMPU's numerical contract (formats, configuration, the fixed-point datapath, the
FP16/FP32 baselines). numpy and numba only: no torch, nothing of the other rooms."""
