"""The band-part generator: request + style -> :class:`~ai_band.model.Arrangement`.

The entry points live in :mod:`ai_band.generate.pipeline` (``generate``,
``resolve_request``, ``validate_request``, ``STYLES``); this package file
imports nothing, so that ``import ai_band.generate.styles`` costs only what
it uses; the pipeline loads a part's generator (:mod:`ai_band.generate.parts`)
when that part is first generated, and the prompt interpreter only for a prompt.
"""
