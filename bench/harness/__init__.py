"""The harness behind ``isol8rt bench``.

I/O-free: ``stats`` (percentiles), ``results`` (the JSON document and its schema), ``targets`` (PASS/FAIL
and ratios), ``compare`` (regressions), ``report`` (the terminal table), ``chart`` (SVG), ``phases``
(timestamps to phase durations). With I/O: ``instrument`` (timing hooks around the engine), ``runner`` (the
sections), ``baselines`` (docker exec / docker run), ``server`` (``isol8rt serve`` in a subprocess),
``machine`` (what it ran on), ``main`` (from parsed arguments to a run and its outputs).
"""
