"""ffmpeg-python's argv finished for ffmpeg: our filter chains as simple filtergraphs (-vf/-af),
and the source's brand tags blanked where the metadata is kept. Pure text work on argv lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


def without_brand_tags(argv: list[str]) -> list[str]:
    """`use_metadata_tags` writes every global tag as an MP4 key, the source's ftyp brands (`qt`)
    too, which readers then take for the output's own: those three are not metadata to keep.
    ffmpeg-python takes one value per option name, so they are added here, before the output."""
    if "-map_metadata" not in argv:
        return argv
    blank = [arg for key in _BRAND_TAGS for arg in ("-metadata", f"{key}=")]
    return [*argv[:-1], *blank, argv[-1]]


_BRAND_TAGS = ("major_brand", "minor_version", "compatible_brands")


def simple_filtergraphs(argv: list[str]) -> list[str]:
    """ffmpeg-python writes every filter chain as -filter_complex; turn each of ours (one input
    stream, one output) back into -map 0:V:0 -vf … / -map 0:a:0 -af …. Why: ffmpeg copies the
    input stream's side data (the display matrix: rotation) only to outputs of a simple
    filtergraph. A chain that branches inside (the alpha composite: split, overlay) keeps its
    inner labels; -vf takes any graph with one open input and one open output.
    """
    if "-filter_complex" not in argv:
        return argv
    at = argv.index("-filter_complex")
    chains: dict[str, _Chain] = {}  # open output label -> the chain it ends
    for part in argv[at + 1].split(";"):
        found = _PART.match(part)
        assert found is not None  # every text matches: each group may be empty
        ins, body, outs = _LABEL.findall(found[1]), found[2], _LABEL.findall(found[3])
        joined = [chains.pop(label) for label in ins if label in chains]
        external = [label for label in ins if label not in {o for p in joined for o in p.opened}]
        chain = joined[0] if joined else _Chain(external[0] if external else "")
        if any(one is not chain for one in joined) or (joined and external) or len(external) > 1:
            return argv  # a real graph (the laps of a loop joined by concat): no chain to pull out
        chain.parts.append((ins, body, outs))
        for label in outs:
            chains[label] = chain
    out = argv[:at] + argv[at + 2 :]
    rewritten: list[str] = []
    index = 0
    while index < len(out):
        arg = out[index]
        if arg == "-map" and out[index + 1].startswith("[") and out[index + 1][1:-1] in chains:
            chain = chains[out[index + 1][1:-1]]
            flag = "-af" if ":a:" in chain.source else "-vf"
            rewritten += ["-map", chain.source, flag, chain.text(out[index + 1][1:-1])]
            index += 2
            continue
        rewritten.append(arg)
        index += 1
    return rewritten


_PART = re.compile(r"^((?:\[[^\]]*\])*)(.*?)((?:\[[^\]]*\])*)$", re.S)
_LABEL = re.compile(r"\[([^\]]*)\]")


@dataclass
class _Chain:
    """The filters fed by one input stream, as ffmpeg-python wrote them: (in labels, filter,
    out labels) each."""

    source: str
    parts: list[tuple[list[str], str, list[str]]] = field(default_factory=list)

    @property
    def opened(self) -> set[str]:
        """Every label a part of this chain has produced."""
        return {label for _, _, outs in self.parts for label in outs}

    def text(self, end: str) -> str:
        """-vf/-af text: a linear chain joined by commas; else the parts with their inner labels,
        the source's and the end's left open."""
        if all(len(ins) <= 1 and len(outs) == 1 for ins, _, outs in self.parts):
            return ",".join(body for _, body, _ in self.parts)
        shown = []
        for ins, body, outs in self.parts:
            opened = "".join(f"[{label}]" for label in ins if label != self.source)
            closed = "".join(f"[{label}]" for label in outs if label != end)
            shown.append(opened + body + closed)
        return ";".join(shown)
