"""Pure-torch reference implementations of the det-ops ops.

Slow, written for clarity: the test oracle of the compiled kernels, and a
readable definition of what each op computes. One module per op.
"""
