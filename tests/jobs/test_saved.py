"""arrangement.json: a generated arrangement comes back exactly, and a bad file is a clear error."""

from __future__ import annotations

import json

import pytest

from ai_band.errors import JobError
from ai_band.generate.pipeline import generate
from ai_band.jobs.saved import ARRANGEMENT_FILE, load_arrangement, save_arrangement
from ai_band.request import parse_request


def test_a_generated_arrangement_comes_back_exactly(tmp_path):
    arrangement = generate(parse_request({"chords": "| C | Am7 | F/A | G7 |", "style": "jazz", "bars": 8, "seed": 11,
                                          "structure": "A A B A", "humanize": 0.7, "swing": 0.4}))
    assert arrangement.chords and arrangement.sections and all(p.notes for p in arrangement.parts)
    path = save_arrangement(arrangement, tmp_path)
    assert path == tmp_path / ARRANGEMENT_FILE and not list(tmp_path.glob("*.tmp"))
    assert load_arrangement(path) == arrangement  # every float, chord span and section


@pytest.mark.parametrize(("content", "reason"), [
    (b"{not json", "not a saved arrangement"),
    (json.dumps({"format": "something-else"}).encode(), "not an ai-band-arrangement file"),
    (json.dumps({"format": "ai-band-arrangement", "version": 99}).encode(), "version 99"),
    (json.dumps({"format": "ai-band-arrangement", "version": 1, "ts": [4, 4]}).encode(), "not a saved arrangement"),
])
def test_a_bad_file_is_a_job_error_naming_the_file(tmp_path, content, reason):
    path = tmp_path / ARRANGEMENT_FILE
    path.write_bytes(content)
    with pytest.raises(JobError, match=reason) as info:
        load_arrangement(path)
    assert str(path) in str(info.value)


def test_a_missing_file_is_a_job_error(tmp_path):
    with pytest.raises(JobError, match="cannot read"):
        load_arrangement(tmp_path / ARRANGEMENT_FILE)
