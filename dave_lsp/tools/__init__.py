"""The tool vocabulary: the tools' names and kinds (catalog), the editor's tool server, the
file tools' schemas and the one-line summaries of a tool use.
"""
