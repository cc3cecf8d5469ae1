"""One module per part, ``<name>.py`` with ``generate_<name>(context, rng) -> list[Note]``.

The names are those of :data:`ai_band.model.PARTS`;
:data:`ai_band.generate.pipeline.GENERATORS` finds each generator by them.
"""
