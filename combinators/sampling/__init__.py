"""The sampling layer: the decisions (mix working sets and budgets, chain and round-robin cursors, seeds).

Integer work on numpy Generators, no I/O: it reads plan nodes' fields and
never runs a source. `combinators.execution` materializes what it decides.
"""
