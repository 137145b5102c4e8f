"""What a scenario is made of, as validated data: hardware and model profiles, the training and
inference workloads, cost assumptions, and the scenario that joins them. Also how they are
read (YAML with line numbers, the built-in catalog, ``--set`` overrides) and how validation
errors are made to say where."""
