"""Live playback: virtual MIDI ports (:mod:`.ports`) and the tempo-locked scheduler (:mod:`.scheduler`)."""
