"""The SimPy engines: training (pipeline steps, failures) and serving."""
