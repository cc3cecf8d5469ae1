"""``<job_id>/job.json``: what was asked, what it resolved to, what came out.

The resolved request lists every parameter after the style's defaults and
the text prompt were applied, so a job can be reproduced exactly with
``ai-band generate`` or ``/band/generate`` from that file alone.
"""

from __future__ import annotations

import datetime as _dt
import json
import pathlib
from typing import Any

from ai_band import __version__
from ai_band.model import Arrangement
from ai_band.request import GenerationRequest
from ai_band.render.atomic import write_atomic

#: File name of the metadata inside a job folder.
JOB_FILE = "job.json"


def chords_per_bar(arrangement: Arrangement) -> list[list[dict[str, Any]]]:
    """One list per bar of ``{"symbol", "beat", "beats"}`` (beats in quarter notes from the bar start)."""
    bars: list[list[dict[str, Any]]] = [[] for _ in range(arrangement.bars)]
    bar_len = arrangement.bar_length_ppq
    for span in arrangement.chords:
        if 0 <= span.bar < arrangement.bars:
            bars[span.bar].append({
                "symbol": span.symbol,
                "beat": round(span.start_ppq - span.bar * bar_len, 6),
                "beats": round(span.duration_ppq, 6),
            })
    return bars


def job_metadata(
    job_id: str,
    requested: GenerationRequest,
    resolved: GenerationRequest,
    arrangement: Arrangement,
    generation_ms: float,
) -> dict[str, Any]:
    """The content of job.json as plain JSON values.

    Args:
        job_id: the job's id.
        requested: the request as received (None = not given).
        resolved: the request with every default and the prompt applied.
        arrangement: the generated parts.
        generation_ms: wall time of generation, milliseconds.
    """
    sections = getattr(arrangement, "sections", ()) or ()
    return {
        "job_id": job_id,
        "version": __version__,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
        "generation_ms": round(generation_ms, 3),
        "seed": arrangement.seed,
        "request": resolved.to_dict(),
        "requested": {k: v for k, v in requested.to_dict().items() if v is not None},
        "style": arrangement.style,
        "key": arrangement.key,
        "bpm": arrangement.bpm,
        "ts": f"{arrangement.ts_num}/{arrangement.ts_den}",
        "bars": arrangement.bars,
        "length_ppq": arrangement.length_ppq,
        "length_s": round(arrangement.length_ppq * 60.0 / arrangement.bpm, 3),
        "sections": [{"name": name, "first_bar": first, "bars": count} for name, first, count in sections],
        "chords_per_bar": chords_per_bar(arrangement),
        "parts": [
            {"name": p.name, "program": p.program, "channel": p.channel + 1, "notes": len(p.notes)}
            for p in arrangement.parts
        ],
    }


def write_job_metadata(job_dir: pathlib.Path, metadata: dict[str, Any]) -> pathlib.Path:
    """Write ``job_dir/job.json`` atomically; returns its path.

    Raises:
        RenderError: the file cannot be written (no ``*.tmp`` is left behind).
    """
    data = json.dumps(metadata, indent=2, sort_keys=False).encode("utf-8") + b"\n"
    return write_atomic(pathlib.Path(job_dir) / JOB_FILE, data)
