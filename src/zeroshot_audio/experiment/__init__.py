"""The paper's experiment, Kedro-free: protocol, clip table, training loop, one-pass evaluation.

Callable from the ``train``/``evaluate`` nodes, a notebook or a benchmark alike.
"""
