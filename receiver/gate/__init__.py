"""The docker gate: the only holder of the Docker socket in the stack (``autoscaler gate``).

It answers the receiver's Docker adapter (docker-py) with the subset of the Docker API the
receiver uses, and allows a request by what it would change, never by how it is written:

- ``scope.py``    which services (and bounds) the configuration names; pure
- ``routes.py``   one request line (method, raw path, query, headers) -> one ``Op``, or ``Refused``
- ``changes.py``  the update and config-create checks, and what a read may show; pure
- ``upstream.py`` the Docker Engine over its socket (aiohttp), the only I/O towards Docker
- ``server.py``   the aiohttp app: reads bounded bodies, calls the checks, forwards what they build
"""
