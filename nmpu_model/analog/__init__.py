"""The analog tiles: random streams by counter, device models (:mod:`.pcm`), crossbar tiles with their
DACs and ADCs (:mod:`.tiles`), and the MVM error check. A new device model goes beside :mod:`.pcm`."""
