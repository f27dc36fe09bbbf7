"""Review of changes: the model's proposed edits, the recorded change sets and their store, revert,
and the review of an edit before it lands.
"""
