"""Every glyph the dashboard shows is in the fonts its stylesheet names (DejaVu, which
Debian installs with chromium): no empty boxes where an emoji font is missing."""

from __future__ import annotations

from pathlib import Path

from fontTools.ttLib import TTFont

WEB = Path(__file__).resolve().parents[2] / "services" / "web"
FONTS = [
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"),
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
]


def shown_text() -> dict[str, set[str]]:
    """Each non-ASCII character of the templates, the page script and the display helpers."""
    files = [
        *WEB.glob("templates/*.tpl"),
        WEB / "static" / "hive.js",
        WEB / "static" / "hive.css",
        WEB / "display.py",
        WEB / "views.py",
    ]
    chars: dict[str, set[str]] = {}
    for f in files:
        for ch in f.read_text(encoding="utf-8"):
            if ord(ch) > 127:
                chars.setdefault(ch, set()).add(f.name)
    return chars


def test_every_glyph_is_in_the_stylesheets_fonts() -> None:
    assert all(f.exists() for f in FONTS), "scripts/bootstrap installs fonts-dejavu-core"
    covered: set[int] = set()
    for f in FONTS:
        covered |= set(TTFont(f).getBestCmap())
    chars = shown_text()
    assert "◆" in chars and "◷" in chars  # the sweep sees the dashboard's glyphs
    missing = {
        f"{ch} U+{ord(ch):04X}": sorted(where)
        for ch, where in chars.items()
        if ord(ch) not in covered
    }
    assert missing == {}, f"glyphs no font of the stylesheet has: {missing}"
