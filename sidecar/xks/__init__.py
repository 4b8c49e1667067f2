"""The sans-IO core of the XKS proxy: routing, SigV4, validation, policy.

Nothing in this package does I/O or imports an event loop, a web framework
or sockets; the data plane feeds it bytes and values and sends back what it
returns. See docs/xks-core.md.
"""
