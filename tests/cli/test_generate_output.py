"""``ai-band generate`` writes byte-identical files for fixed requests (style, seed).

The SHA-256 of every file of a few fixed requests was computed on main before
the command's loading was made lazy (issue 14, item 8); speed work on the
command line must not change one note.  job.json is hashed without the fields
that change from run to run (job id, time, generation time, version).

A hash here changes only when the generator's output is meant to change: then
recompute them (the failure shows every file's new hash) and say so in the
commit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from clirun import run_cli

#: Fields of job.json that differ between two runs of the same request.
VOLATILE = ("job_id", "generated_at", "generation_ms", "version")

#: name -> (flags, {file name: sha256 of the file}); job.json hashed without :data:`VOLATILE`.
CASES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    # The job of bench/cli_speed.py.
    "rock-bench": (
        ("--style", "rock", "--bpm", "120", "--seed", "1", "--bars", "8",
         "--chords", "| C | Am | F | G | C | Am | F | G |"),
        {
            "bass.mid": "3986e19d384b6bd860701cf6a6d6de5ee0f3b0ccb2ef26668bb8e4cd7c6e6333",
            "drums.mid": "8d57caec6ab2f959119e1060a6275e8ce06349983d01efd36ab3c2dbcbc147b9",
            "full.mid": "a34da37d47f043aeb4b3484e003b5f8e4aff108f134669ceefc6ff6f5c5dd12e",
            "job.json": "237fc5394c012f2bcad1743e9c962109be64d464356c5f8bd044b2f2703ee055",
            "keys.mid": "c0934e6c94b9ad66de847885b1a4518a862334518f3566dd2b3cb00fff2c2c18",
        },
    ),
    # Every part's generator, a song form, roman numerals.
    "jazz-all-parts": (
        ("--style", "jazz", "--seed", "7", "--key", "C", "--chords", "| ii7 | V7 | Imaj7 | % |",
         "--structure", "intro verse chorus outro", "--energy", "0.7", "--complexity", "0.8",
         "--parts", "drums,bass,keys,guitar,pad,strings,melody,arp"),
        {
            "arp.mid": "e60d3bf564904ec9d67fc923d610d292052d52cb466410359ce9aac3abecf6b4",
            "bass.mid": "0fdeeedfa43047fc090dbeb557fdcf57600ae9b2c8313752f3965a9cdb76c0b6",
            "drums.mid": "5b821087ba102d04cfd5c29160153894eb8ee7ad22512f8a9b48fa3413814eeb",
            "full.mid": "07d664449c37bdf1032dab6efbc7245aa4c1b3031e3cf569155c8a1882aac227",
            "guitar.mid": "3c21979fbc1a0333d4a02601173c2d83a32af1afbe7ecb819fbf9de410cd3aff",
            "job.json": "28efb2b3e6553567e29196a90f96ce8084c7da3624039e083a4f581466426e84",
            "keys.mid": "3d65e0fa970b7e5caedaf1f50ef5693752aabc85f88982df2600473d17278c54",
            "melody.mid": "9feb096471a91fbc6ad08695d1f96a8fcb5da64097f94c0320863a6525aa75bf",
            "pad.mid": "6dad00782559cbf779c452916a2b229ff22df0658c1ff4dad31fe2551a55ce3e",
            "strings.mid": "ba9369317c17d275384e46c68aa54cba6c0a17198675d78480c5a5973cea0fca",
        },
    ),
    # The prompt interpreter, no chords, the derived seed.
    "prompt": (("--prompt", "sad slow jazz ballad in D minor", "--bars", "6"), {
            "bass.mid": "b0e7c2cdf9412237a8762737c767fab8b3ffef98ff4032e1a96a18c90d977613",
            "drums.mid": "f616a561394d580c3205dd3f1df03fa035f1fff4698443fcb84256256e752130",
            "full.mid": "10affd47eb4247f2a0eccc215029f76325f20ce981572a25e22f2a3d802bb4f9",
            "job.json": "ac11c92ecb1a0611fe344bc9db31223eea2bce30b27b0adee658c3a7bf2a95fe",
            "keys.mid": "0f3737fa860311b7e25ee034d3eee06cfe71cbaa737cdd6889f0dd2d355c9234",
        }),
    # A compound meter, sections, program and channel overrides, swing and humanize.
    "gospel-sections": (
        ("--style", "gospel", "--seed", "11", "--ts", "6/8", "--swing", "0.3", "--humanize", "0.5",
         "--sections", '{"verse": "| Eb | Ab | Bb7 | Eb |", "chorus": "| Ab | Eb/G | Fm7 Bb7 | Eb |"}',
         "--structure", "verse chorus verse", "--programs", "keys=4", "--channels", "bass=5"),
        {
            "bass.mid": "73319e0ec01f7cb92d19a878426def0dad2cb28d4b8fb3c4d10bd96e8e5f3d2d",
            "drums.mid": "8868d454ee920c6e3f1438860c63d1cfbfd77ca4166812dad55ef0d989bbbf50",
            "full.mid": "b3a268fbe42b0ba86f59db3a9bd5a8073c3479c5d0ce076af907d0187303c62c",
            "job.json": "da0a52b5fabab5b818931a9c07b436012613a5fcbcf0fb28dd5b411bb322ae15",
            "keys.mid": "2a4c767efaa11f84c80d59152ff149333c7d8eaaf1aa172489c498a2c672a7ee",
            "pad.mid": "d09b1eb0fdb8701ed2e8f2f0b1d13cd5874d27b217a85572148cd712e24f7657",
        },
    ),
    # A 3/4 style with its default parts and a duration instead of bars.
    "waltz-duration": (("--style", "waltz", "--seed", "3", "--duration", "20", "--chords", "G D7 G C"), {
            "bass.mid": "9767b0d1b8ab6a247c003542a12b723ebea8f3cddce5c63963713ddf4d4ec030",
            "drums.mid": "059d58eeffca6a01043c3333c41bce47002f7551e5f5e16ff1968f7b5d9842ae",
            "full.mid": "1b9e6079c0489c6c9102c92f3d329498694bd2e3a94a9fbf9d0f99eea0db83f6",
            "job.json": "3f139618fa2daa09747b9c2b86fc822d38d4c7cf62e91cbe7289b16a85f93a60",
            "keys.mid": "c4688cb608735248eef7b832bcee9a494640d38bbb99333379f54ac54c799fe9",
            "strings.mid": "78d0f726ed3fac88fc772fe229fac30dd2d498b24c3741633bba4572c36caeeb",
        }),
}


def file_hashes(job_dir: Path) -> dict[str, str]:
    """SHA-256 of every file in ``job_dir`` (job.json without its volatile fields)."""
    hashes = {}
    for path in sorted(job_dir.iterdir()):
        data = path.read_bytes()
        if path.name == "job.json":
            meta = json.loads(data)
            for field in VOLATILE:
                meta.pop(field)
            data = json.dumps(meta, sort_keys=True).encode()
        hashes[path.name] = hashlib.sha256(data).hexdigest()
    return hashes


@pytest.mark.parametrize("name", sorted(CASES))
def test_generate_output_is_unchanged(name: str, tmp_path: Path) -> None:
    flags, expected = CASES[name]
    result = run_cli("generate", *flags, "-o", str(tmp_path), "--job-id", name)
    assert result.returncode == 0, result.stderr
    assert file_hashes(tmp_path / name) == expected
