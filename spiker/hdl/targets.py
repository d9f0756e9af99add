"""FPGA parts the open implementation flow knows: names, nextpnr flags and capacities.

A target is named ``<family>-<device>`` (``ecp5-85k``, ``ice40-up5k``); the speed grade and
package are options with a default each. Capacities are the data sheets' figures for the
chosen package (user I/O differ by package); nextpnr's own report, when there is one,
overrides the logic and memory counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spiker.errors import SpikerError


class TargetError(SpikerError, ValueError):
    """An unknown target, speed grade or package."""


@dataclass(frozen=True)
class Part:
    """One FPGA device of a family with its packages (name -> user I/O) and capacities."""

    family: str            # "ecp5" or "ice40"
    device: str            # nextpnr's device flag without dashes: "85k", "up5k"
    part: str              # the vendor's part name
    lut4: int
    ff: int
    bram: int              # DP16KD (ECP5, 18 kbit) or SB_RAM40_4K (iCE40, 4 kbit)
    dsp: int               # MULT18X18D (ECP5) or SB_MAC16 (iCE40)
    packages: dict[str, int] = field(default_factory=dict)
    default_package: str = ""
    speeds: tuple[str, ...] = ()
    default_speed: str = ""


PARTS: dict[str, Part] = {p.family + "-" + p.device: p for p in (
    Part("ecp5", "25k", "LFE5U-25F", 24288, 24288, 56, 28,
         {"CABGA256": 197, "CABGA381": 197, "CSFBGA285": 118, "TQFP144": 98}, "CABGA381", ("6", "7", "8"), "6"),
    Part("ecp5", "45k", "LFE5U-45F", 43848, 43848, 108, 72,
         {"CABGA256": 197, "CABGA381": 203, "CABGA554": 245, "CSFBGA285": 118, "TQFP144": 98}, "CABGA381",
         ("6", "7", "8"), "6"),
    Part("ecp5", "85k", "LFE5U-85F", 83640, 83640, 208, 156,
         {"CABGA381": 205, "CABGA554": 259, "CABGA756": 365, "CSFBGA285": 118}, "CABGA381", ("6", "7", "8"), "6"),
    Part("ice40", "up5k", "iCE40UP5K", 5280, 5280, 30, 8, {"sg48": 39, "uwg30": 21}, "sg48"),
    Part("ice40", "hx8k", "iCE40HX8K", 7680, 7680, 32, 0, {"ct256": 206, "cb132": 95, "tq144": 107}, "ct256"),
)}


@dataclass(frozen=True)
class Target:
    """A part in a package at a speed grade: what nextpnr is asked to place and route on."""

    name: str
    part: Part
    package: str
    speed: str = ""

    @property
    def family(self) -> str:
        return self.part.family

    @property
    def io(self) -> int:
        """User I/O pins of the package."""
        return self.part.packages[self.package]

    def nextpnr_args(self) -> list[str]:
        """Device, package and speed flags of ``nextpnr-<family>``."""
        if self.family == "ecp5":
            return [f"--{self.part.device}", "--package", self.package, "--speed", self.speed]
        return [f"--{self.part.device}", "--package", self.package]

    def __str__(self) -> str:
        speed = f", speed {self.speed}" if self.speed else ""
        return f"{self.name} ({self.part.part}, {self.package}{speed})"


def target(name: str, speed: int | str | None = None, package: str | None = None) -> Target:
    """The target ``name`` (``ecp5-25k``, ``ecp5-45k``, ``ecp5-85k``, ``ice40-up5k``, ``ice40-hx8k``)."""
    part = PARTS.get(str(name).lower())
    if part is None:
        raise TargetError(f"unknown target {name!r}; known: {', '.join(PARTS)}")
    pkg = part.default_package if package is None else str(package)
    match = {p.lower(): p for p in part.packages}.get(pkg.lower())
    if match is None:
        raise TargetError(f"{part.part} has no package {pkg!r}; known: {', '.join(part.packages)}")
    if part.family == "ecp5":
        spd = part.default_speed if speed is None else str(speed)
        if spd not in part.speeds:
            raise TargetError(f"{part.part} has no speed grade {speed!r}; known: {', '.join(part.speeds)}")
    else:
        if speed is not None:
            raise TargetError(f"{part.part} has no selectable speed grade (got {speed!r})")
        spd = ""
    return Target(name=str(name).lower(), part=part, package=match, speed=spd)


__all__ = ["PARTS", "Part", "Target", "TargetError", "target"]
