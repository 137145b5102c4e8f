"""The cost models: what a device does for each operation, and how long it takes.

Pure functions and plain data, no SimPy: the engines ask them what an op list, a collective
or a serving iteration costs and decide themselves what overlaps. Op lists are built from
layer shapes (:mod:`~simulator.perf.opspec`, :mod:`~simulator.perf.transformer`), priced by
the one roofline kernel (:mod:`~simulator.perf.kernel`) through :mod:`~simulator.perf.roofline`
or a :class:`~simulator.perf.pricer.Pricer`; collectives by :mod:`~simulator.perf.collectives`;
memory footprints by :mod:`~simulator.perf.memory` and :mod:`~simulator.perf.footprint`.
"""
