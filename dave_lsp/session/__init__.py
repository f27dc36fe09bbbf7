"""The session layer: the manager, each session's actor and turn, the process pool, the saved
records and a query's editor context.
"""
