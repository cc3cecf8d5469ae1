"""Speed of the command line, as whole processes, against the tools a user would compare it with.

Three cases, each timed as a whole process (start to exit, wall clock),
``--runs`` times (10), interleaved (every round runs each command once, in
turn), so that a noisy neighbour on a shared machine spreads over all of them:

* ``generate``: ``ai-band generate`` of an 8-bar MIDI-only job (style rock,
  ``| C | Am | F | G | C | Am | F | G |``, 120 bpm) against MMA (Musical MIDI
  Accompaniment, Debian package ``mma``) writing a MIDI file from the same
  sheet and tempo with the groove of the same family
  (:func:`bench.mma_reference.groove_for`: BasicRock).  Goal: no slower than MMA.
* ``render``: ``ai-band generate --render wav`` of a 32-bar job (drums, bass,
  keys; ``| C | Am | F | G |`` at 120 bpm: 64 s of music), generation,
  FluidSynth rendering and loudness normalisation included, against
  FluidSynth's own command line rendering that job's ``full.mid`` with the
  same SoundFont (``fluidsynth -ni -F out.wav <sf2> full.mid``; Debian
  package ``fluidsynth``).  Goal: no slower than the FluidSynth command line.
* ``help``: ``ai-band --help``.  Goal: at most 100 ms.

``ai-band`` runs as ``<this python> -m ai_band`` from the repository root,
so the checkout is what is measured.  Every figure is the median of the runs;
a missing reference tool (mma, fluidsynth) leaves its column empty and the
goal unjudged.  Each command runs once before the timed rounds (page cache,
SoundFont).

Usage: python -m bench.cli_speed [--runs 10] [--json bench/results/cli_speed.json]
Exit code: 0 when every goal that could be judged is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ai_band.render.audio import find_soundfont
from bench.machine import machine_name
from bench.mma_reference import groove_for, mma_path, write_mma

ROOT = Path(__file__).resolve().parents[1]

STYLE = "rock"
BPM = 120
SEED = 1
#: The MIDI-only job: 8 bars, one chord per bar.
MIDI_CHORDS = ("C", "Am", "F", "G", "C", "Am", "F", "G")
#: The audio job: 32 bars of this 4-bar sheet, three parts.
RENDER_CHORDS = "| C | Am | F | G |"
RENDER_BARS = 32
RENDER_PARTS = "drums,bass,keys"
#: ``ai-band --help`` may take this long, milliseconds.
HELP_GOAL_MS = 100.0


@dataclass
class Case:
    """One comparison: our command and the reference's (None: no reference, or not installed)."""

    name: str
    goal: str
    ours: list[str]
    reference: list[str] | None = None
    reference_name: str = ""
    limit_ms: float | None = None
    ours_ms: list[float] = field(default_factory=list)
    reference_ms: list[float] = field(default_factory=list)

    def result(self) -> dict[str, object]:
        """Medians, ratio and whether the goal is met (None: cannot be judged)."""
        ours = statistics.median(self.ours_ms)
        reference = statistics.median(self.reference_ms) if self.reference_ms else None
        if self.limit_ms is not None:
            met: bool | None = ours <= self.limit_ms
        elif reference is not None:
            met = ours <= reference
        else:
            met = None
        return {
            "goal": self.goal,
            "ours_median_ms": round(ours, 1),
            "reference": self.reference_name or None,
            "reference_median_ms": round(reference, 1) if reference is not None else None,
            "ratio": round(ours / reference, 2) if reference else None,
            "met": met,
            "ours_ms": [round(t, 1) for t in self.ours_ms],
            "reference_ms": [round(t, 1) for t in self.reference_ms],
        }


def ai_band(*args: str) -> list[str]:
    """The ``ai-band`` command line of this checkout."""
    return [sys.executable, "-m", "ai_band", *args]


#: The children's environment: bytecode caches allowed (an installed wheel has them; with
#: PYTHONDONTWRITEBYTECODE set, as in some shells, every run would compile every module, ~60 ms).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: Sequence[str], cwd: Path) -> float:
    """Run ``argv`` to completion; its wall time in milliseconds.

    Raises:
        RuntimeError: the command failed (its stderr's last line quoted).
    """
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300,
                          env=CHILD_ENV)
    elapsed = (time.perf_counter() - t0) * 1000.0
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {proc.returncode}: {tail}")
    return elapsed


def build_cases(work: Path) -> list[Case]:
    """The three cases, with the reference inputs (MMA file, full.mid) written into ``work``."""
    out = work / "jobs"
    sheet = "| " + " | ".join(MIDI_CHORDS) + " |"
    common = ("--style", STYLE, "--bpm", str(BPM), "--seed", str(SEED), "-o", str(out))
    generate = Case("generate", "no slower than MMA", ai_band("generate", "--chords", sheet, "--bars", "8", *common))
    groove, _ = groove_for(STYLE)
    exe = mma_path()
    if exe is not None and groove is not None:
        source = work / "sheet.mma"
        source.write_text(write_mma([[(0.0, chord)] for chord in MIDI_CHORDS], groove, BPM, (4, 4), SEED))
        generate.reference, generate.reference_name = [exe, "-w", str(source), "-f", str(work / "mma.mid")], "mma"

    render_args = ("generate", "--chords", RENDER_CHORDS, "--bars", str(RENDER_BARS), "--parts", RENDER_PARTS, *common)
    render = Case("render", "no slower than the fluidsynth command line", ai_band(*render_args, "--render", "wav"))
    soundfont, fluidsynth = find_soundfont(), shutil.which("fluidsynth")
    if soundfont is not None and fluidsynth is not None:
        timed(ai_band(*render_args, "--job-id", "reference"), ROOT)
        render.reference = [fluidsynth, "-ni", "-F", str(work / "fluidsynth.wav"), soundfont,
                            str(out / "reference" / "full.mid")]
        render.reference_name = "fluidsynth"

    help_case = Case("help", f"<= {HELP_GOAL_MS:g} ms", ai_band("--help"), limit_ms=HELP_GOAL_MS)
    return [generate, render, help_case]


def job_id_args(case: Case, run: int) -> list[str]:
    """A fresh ``--job-id`` per run of a generate case (an existing job is not overwritten)."""
    return ["--job-id", f"{case.name}-{run}"] if "generate" in case.ours else []


def measure(cases: Sequence[Case], runs: int) -> None:
    """One untimed run of each command, then ``runs`` interleaved rounds."""
    for run in range(-1, runs):
        for case in cases:
            elapsed = timed(case.ours + job_id_args(case, run), ROOT)
            if run >= 0:
                case.ours_ms.append(elapsed)
            if case.reference is not None:
                elapsed = timed(case.reference, ROOT)
                if run >= 0:
                    case.reference_ms.append(elapsed)


def install_kind() -> str:
    """How ``ai-band`` is installed for this interpreter: "editable", "non-editable" or "not installed".

    An editable install's import finder (a ``.pth`` file run by ``site``) adds
    ~15-30 ms to every start; a user's ``pip install`` is non-editable.  Either
    way ``-m ai_band`` from the repository root runs the checkout's code.
    """
    import site
    from importlib import metadata

    # The installed distribution, not an ai_band.egg-info in the checkout (on sys.path first).
    found = [d for d in metadata.distributions(path=site.getsitepackages()) if d.metadata["Name"] == "ai-band"]
    if not found:
        return "not installed"
    direct_url = found[0].read_text("direct_url.json")
    editable = bool(direct_url and json.loads(direct_url).get("dir_info", {}).get("editable"))
    return "editable" if editable else "non-editable"


def print_table(results: dict[str, dict[str, object]], machine: str, runs: int, out=sys.stdout) -> None:
    """The results as a plain-text table."""
    print(f"machine: {machine}; median of {runs} whole-process runs each, interleaved", file=out)
    print(f"interpreter: {sys.executable} (ai-band install: {install_kind()})", file=out)
    print(f"{'case':9s} {'ai-band ms':>10s} {'reference':>12s} {'ref ms':>8s} {'ratio':>6s}  goal", file=out)
    for name, r in results.items():
        ref_ms = f"{r['reference_median_ms']:.1f}" if r["reference_median_ms"] is not None else "-"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        verdict = {True: "met", False: "NOT met", None: "not judged"}[r["met"]]
        print(f"{name:9s} {r['ours_median_ms']:10.1f} {r['reference'] or '-':>12s} {ref_ms:>8s} {ratio:>6s}  "
              f"{r['goal']}: {verdict}", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each command (default 10)")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with tempfile.TemporaryDirectory(prefix="ai-band-cli-speed-") as tmp:
        cases = build_cases(Path(tmp))
        measure(cases, args.runs)
    results = {case.name: case.result() for case in cases}
    machine = machine_name()
    print_table(results, machine, args.runs)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "runs": args.runs, "python": sys.executable,
                                         "install": install_kind(), "cases": results}, indent=2) + "\n")
    return 0 if all(r["met"] is not False for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
