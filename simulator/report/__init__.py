"""Everything shown or written for a person: terminal tables (run, roofline, profiles), the HTML
report and its plots, the files of ``--out`` (all through
:func:`simulator.report.files.write_atomic`), progress bars, and the reference tables
generated from the schemas."""
