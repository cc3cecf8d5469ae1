"""The band-part generator: request + style -> :class:`~ai_band.model.Arrangement`.

The entry points live in :mod:`ai_band.generate.pipeline` (``generate``,
``resolve_request``, ``validate_request``, ``STYLES``); this package file
imports nothing, so that ``import ai_band.generate.styles`` (or the
pipeline, which loads the part generators of :mod:`ai_band.generate.parts`)
costs only what it uses.
"""
