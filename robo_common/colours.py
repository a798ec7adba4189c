"""Basic colour names and what colour a patch of pixels shows (ROS-free, numpy only).

Used by the checks that ask "is this keypoint on the object the plan names?": a plan names objects
by words such as ``red block`` or ``small cyan cube``, and the camera shows a colour. The lexicon is
the basic colour terms, each at the sRGB value that the xkcd colour-name survey (Munroe 2010, ~200 000
participants) found most typical for it (not the simulator's colours), compared in CIE L*a*b* (D65):

* a patch whose chroma is below ``min_chroma`` is achromatic: ``white`` (L* >= 70), ``black``
  (L* < 25) or ``grey``;
* otherwise the chromatic term whose prototype's hue angle (atan2(b*, a*)) is nearest wins. Hue is
  compared, not the whole L*a*b* point, because shading (a block's darker side faces) changes
  lightness and chroma far more than hue: a shaded red face is "brown" by the nearest L*a*b* point.

Limits: brown, magenta and other terms that differ from a basic term mainly by lightness are not in
the chromatic set (a patch is never classified as them, and a name using them is not checked), and
a strongly coloured light shifts hues (calibrate the camera's white balance first).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

CHROMATIC: dict[str, tuple[int, int, int]] = {
    "red": (0xE5, 0x00, 0x00),
    "orange": (0xF9, 0x73, 0x06),
    "yellow": (0xFF, 0xFF, 0x14),
    "green": (0x15, 0xB0, 0x1A),
    "cyan": (0x00, 0xFF, 0xFF),
    "blue": (0x03, 0x43, 0xDF),
    "purple": (0x7E, 0x1E, 0x9C),
    "pink": (0xFF, 0x81, 0xC0),
}
"""Chromatic basic colour terms and their xkcd-survey sRGB values."""
ACHROMATIC = ("white", "grey", "black")
SYNONYMS = {"gray": "grey"}
"""Other spellings of a term."""


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of sRGB colours given as 0..255 values, shape ``(..., 3)``."""
    c = np.asarray(rgb, float) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


_PROTO_HUE = {name: math.degrees(math.atan2(lab[2], lab[1]))
              for name, lab in ((n, srgb_to_lab(np.array(v))) for n, v in CHROMATIC.items())}


def hue_distance(a: float, b: float) -> float:
    """Smallest angle between two hue angles (degrees)."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


def named_colour(name: str) -> str | None:
    """The basic colour term in an object's name (``"small red block"`` -> ``red``), or None."""
    for word in re.findall(r"[a-z]+", name.lower()):
        word = SYNONYMS.get(word, word)
        if word in CHROMATIC or word in ACHROMATIC:
            return word
    return None


@dataclass(frozen=True)
class ColourReading:
    """What colour a patch shows.

    Attributes:
        term: The basic colour term it is classified as.
        lightness: Median L*.
        chroma: Chroma of the median a*, b*.
        hue_deg: Hue angle of the median a*, b* (degrees; meaningless when achromatic).
        pixels: How many pixels were read.
    """

    term: str
    lightness: float
    chroma: float
    hue_deg: float
    pixels: int

    @property
    def chromatic(self) -> bool:
        """Whether the patch was classified by hue."""
        return self.term in CHROMATIC

    def distance_to(self, term: str) -> float:
        """Hue distance (degrees) to a chromatic ``term``'s prototype (inf if either is achromatic)."""
        if not self.chromatic or term not in CHROMATIC:
            return math.inf
        return hue_distance(self.hue_deg, _PROTO_HUE[term])

    def describe(self) -> str:
        """E.g. ``blue (hue -63 deg, chroma 70)``."""
        if self.chromatic:
            return f"{self.term} (hue {self.hue_deg:.0f} deg, chroma {self.chroma:.0f})"
        return f"{self.term} (lightness {self.lightness:.0f}, chroma {self.chroma:.0f})"


def read_colour(pixels: np.ndarray, min_chroma: float = 15.0) -> ColourReading:
    """Classify a set of sRGB pixels (``(N, 3)``, 0..255) as one basic colour term (see module doc).

    Raises:
        ValueError: no pixels.
    """
    px = np.asarray(pixels, float).reshape(-1, 3)
    if len(px) == 0:
        raise ValueError("read_colour needs at least one pixel")
    lab = np.median(srgb_to_lab(px), axis=0)
    lightness, a, b = (float(x) for x in lab)
    chroma = math.hypot(a, b)
    hue = math.degrees(math.atan2(b, a))
    if chroma < min_chroma:
        term = achromatic_term(lightness)
    else:
        term = min(CHROMATIC, key=lambda t: hue_distance(hue, _PROTO_HUE[t]))
    return ColourReading(term, lightness, chroma, hue, len(px))


def contradicts(reading: ColourReading, term: str, margin_deg: float = 5.0) -> bool:
    """Does ``reading`` say the patch is *not* ``term``?

    A chromatic reading contradicts a chromatic term when another term is nearer in hue by more than
    ``margin_deg``; achromatic and chromatic contradict each other; two achromatic terms never do
    (white and grey differ by exposure, which the camera does not calibrate).
    """
    if term not in CHROMATIC and term not in ACHROMATIC:
        return False
    if reading.term == term:
        return False
    if reading.chromatic and term in CHROMATIC:
        best = reading.distance_to(reading.term)
        return reading.distance_to(term) - best > margin_deg
    return reading.chromatic != (term in CHROMATIC)


def achromatic_term(lightness: float) -> str:
    """``white``, ``grey`` or ``black`` for an achromatic patch of median L* ``lightness``."""
    return "white" if lightness >= 70 else "black" if lightness < 25 else "grey"


TERMS = (*CHROMATIC, *ACHROMATIC)
"""Every colour term, in the order of :func:`pixel_terms`'s indices."""


def pixel_terms(pixels: np.ndarray, min_chroma: float = 15.0) -> np.ndarray:
    """Per pixel (``(N, 3)`` sRGB, 0..255), the index in :data:`TERMS` of its term: the nearest chromatic hue
    when the chroma is at least ``min_chroma``, else white / grey / black by lightness (:func:`achromatic_term`)."""
    lab = srgb_to_lab(np.asarray(pixels, float).reshape(-1, 3))
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1]))
    dist = np.stack([np.abs((hue - _PROTO_HUE[n] + 180.0) % 360.0 - 180.0) for n in CHROMATIC], axis=1)
    achromatic = np.where(lab[:, 0] >= 70, 0, np.where(lab[:, 0] < 25, 2, 1)) + len(CHROMATIC)
    return np.where(chroma >= min_chroma, np.argmin(dist, axis=1), achromatic)


def term_mask(pixels: np.ndarray, term: str, min_chroma: float = 15.0) -> np.ndarray:
    """Per pixel (``(N, 3)`` sRGB, 0..255): does it read as the chromatic ``term`` (nearest hue, chroma above
    ``min_chroma``)? All False for an achromatic or unknown term (shading makes single pixels unreliable there).
    """
    px = np.asarray(pixels, float).reshape(-1, 3)
    if term not in CHROMATIC or len(px) == 0:
        return np.zeros(len(px), bool)
    return pixel_terms(px, min_chroma) == TERMS.index(term)
