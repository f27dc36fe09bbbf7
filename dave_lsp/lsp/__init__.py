"""The LSP front end: the pygls server, its wire types, `$/progress` reports, the socket transports
and the terminal chat client.
"""
