"""The tool vocabulary: the editor's tool server, the file tools' schemas and the one-line
summaries of a tool use.
"""
