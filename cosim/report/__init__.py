"""Reporting: every table and plot the commands show (:mod:`.plots`) and the report's HTML (:mod:`.markdown`).

Imports :mod:`nmpu_model` only: the figures take plain data (dicts of results), never a simulator or a netlist.
"""
