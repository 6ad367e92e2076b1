"""The local engine: an ``isol8rt serve --socket`` on a Unix socket only its user can reach, which
``isol8rt run`` sends its runs to when one answers (warm containers instead of a cold start each time).

:mod:`.paths` says where the socket lives and checks that it is private; :mod:`.client` is the one call
``run`` makes to it, in the standard library and the wire types only (no trio: its import alone would
cost more than a warm run).
"""
