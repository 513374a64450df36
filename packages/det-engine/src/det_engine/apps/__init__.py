"""The command-line applications, built on the det_engine library: train, test, demo,
quickstart, shapes_zoo, bench and plot (each run as ``python -m det_engine.<name>``)."""
