"""SMS segment counting (GSM 03.38 and UCS-2) and cleaning text so it stays GSM-7.

A message whose every character is in the GSM-7 default alphabet (or its extension
table, which costs two septets a character) fits 160 septets in one segment, or 153 a
segment once it is split. Any other character forces UCS-2 for the whole message: 70
UTF-16 code units in one segment, 67 a segment when split (an emoji takes two units).
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

# Characters that look plain but force UCS-2, and the plain GSM-7 text that reads the same.
_PLAIN = {
    "\u00a0": " ",  # no-break space
    "\u2007": " ",
    "\u202f": " ",
    "\u2009": " ",
    "\u200a": " ",
    "\u2002": " ",
    "\u2003": " ",
    "\u200b": "",  # zero-width space
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u2032": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u2033": '"',
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2212": "-",
    "\u2010": "-",
    "\u2011": "-",
    "\u2026": "...",
    "\u00b4": "'",
    "\u02bc": "'",
    "\t": " ",
}


@dataclass(frozen=True, slots=True)
class Segments:
    encoding: str  # "GSM-7" or "UCS-2"
    count: int
    length: int  # septets for GSM-7, UTF-16 code units for UCS-2
    forcing: tuple[str, ...]  # the characters that forced UCS-2, in order of appearance

    def describe(self) -> str:
        text = f"{self.count} segments ({self.encoding}, {self.length} "
        text += "characters" if self.encoding == "GSM-7" else "UTF-16 units"
        if self.forcing:
            shown = ", ".join(f"'{c}' U+{ord(c):04X}" for c in self.forcing[:5])
            more = f" and {len(self.forcing) - 5} more" if len(self.forcing) > 5 else ""
            text += f", UCS-2 forced by {shown}{more}"
        return text + ")"


def count_segments(text: str) -> Segments:
    septets = 0
    forcing: list[str] = []
    for char in text:
        if char in GSM7_BASIC:
            septets += 1
        elif char in GSM7_EXTENSION:
            septets += 2
        elif char not in forcing:
            forcing.append(char)
    if not forcing:
        count = 1 if septets <= 160 else -(-septets // 153)
        return Segments("GSM-7", count, septets, ())
    # A lone surrogate (a YAML "\ud800" escape) is one code unit too; it must not raise.
    units = len(text.encode("utf-16-le", "surrogatepass")) // 2
    count = 1 if units <= 70 else -(-units // 67)
    return Segments("UCS-2", count, units, tuple(forcing))


def clean_for_sms(text: str) -> str:
    """Replace look-alike characters that would force UCS-2 with their plain GSM-7 twins.

    Only characters with a plain twin are replaced; anything else (emoji, accents
    outside GSM-7) is kept, since changing it would change what the message says.
    """
    if all(char in GSM7_BASIC for char in text):
        return text
    cleaned = "".join(_PLAIN.get(char, char) for char in text)
    # Rarely, plain twins cost more: 70 "…" fit one UCS-2 segment, 210 "." do not.
    if count_segments(cleaned).count > count_segments(text).count:
        return text
    return cleaned
