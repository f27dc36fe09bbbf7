"""The session layer: the manager (and `build_manager`), each session's actor with its
inbox, hooks and settings, what a session keeps, the model clients, a turn, the process
pool, the saved records, a query's editor context, and what it hands the front ends.
"""
