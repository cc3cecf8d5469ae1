"""``ai-band styles``: the styles, a line each (name, default tempo, meter, feel, description)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``styles``."""
    styles = sub.add_parser("styles", help="list the styles with their default tempo, meter and feel",
                            description="List the styles a request can name (--style, /band/generate style).")
    styles.add_argument("--json", action="store_true", help="print a JSON list of objects instead")
    styles.set_defaults(func=cmd_styles)


def feel(swing: float, swing_level: str) -> str:
    """The style's default feel in words: ``straight``, or the swing amount and what swings.

    ``swing_level`` ``"sub"`` swings the beat's halves (8ths in 4/4), ``"fine"`` its quarters (16ths).
    """
    if swing <= 0.0:
        return "straight"
    return f"swing {swing:g} ({'8ths' if swing_level == 'sub' else '16ths'})"


def cmd_styles(args: argparse.Namespace) -> int:
    """``ai-band styles``: one line per style from the style table (:mod:`ai_band.generate.styles`)."""
    from ai_band.cli.common import print_json
    from ai_band.generate.styles import DEFAULT_STYLE, STYLES, style_names

    rows = []
    for name in style_names():
        style = STYLES[name]
        rows.append({
            "name": name,
            "bpm": style.bpm,
            "ts": f"{style.ts[0]}/{style.ts[1]}",
            "feel": feel(style.swing, style.swing_level),
            "swing": style.swing,
            "parts": list(style.parts),
            "default": name == DEFAULT_STYLE,
            "description": style.description,
        })
    if args.json:
        print_json(rows)
        return 0
    width = max(len(row["name"]) for row in rows) + 2
    for row in rows:
        name = row["name"] + ("*" if row["default"] else "")
        print(f"{name:<{width}}{row['bpm']:>4g} bpm  {row['ts']:<5}{row['feel']:<19}{row['description']}")
    print(f"* the default style ({DEFAULT_STYLE})")
    return 0
