"""The JUnit XML report: one testcase per source, one failure per violation, for CI dashboards.

The shape is the common denominator Jenkins, GitLab and GitHub test reporters all read.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..policy import Policy
from ..verdict import Result, Violation
from .atomic import write_atomically
from .printable import printable
from .text import describe

# XML 1.0 forbids most control characters and lone surrogates (undecodable file-name bytes);
# ElementTree writes them anyway and every reader then refuses the whole file.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def write(results: list[Result], path: str | Path, *, policy: Policy) -> None:
    """Write `results` as a JUnit XML file at `path`, atomically."""
    suites = ET.Element("testsuites", name="preflight")
    suite = ET.SubElement(suites, "testsuite", name="preflight")
    properties = ET.SubElement(suite, "properties")
    for name, value in _policy_properties(policy):
        ET.SubElement(properties, "property", name=name, value=value)
    for result in results:
        suite.append(_testcase(result, policy))

    # `failures` and `errors` count testcases, as every reader expects (tests >= failures):
    # a rejected source is one failed testcase, whatever the number of its violations.
    counts = {
        "tests": str(len(results)),
        "failures": str(sum(1 for r in results if r.verdict == "reject")),
        "errors": str(sum(1 for r in results if r.verdict == "error")),
        "skipped": "0",
        "time": _seconds(sum(r.probe_ms for r in results)),
    }
    suite.attrib.update(counts)
    suites.attrib.update({k: v for k, v in counts.items() if k != "skipped"})

    ET.indent(suites)
    document = ET.tostring(suites, encoding="unicode", xml_declaration=False)
    data = '<?xml version="1.0" encoding="UTF-8"?>\n' + document + "\n"
    write_atomically(Path(path), data.encode("utf-8"))


def _testcase(result: Result, policy: Policy) -> ET.Element:
    case = ET.Element(
        "testcase",
        classname=_clean(f"preflight.{policy.name}"),
        name=_clean(result.source),
        time=_seconds(result.probe_ms),
    )
    if result.verdict == "error":
        kind = result.error.kind if result.error else "unreadable"
        message = result.error.message if result.error else "the source could not be read"
        error = ET.SubElement(case, "error", type=_clean(kind), message=_clean(message))
        error.text = _clean(message)
    for violation in result.violations:
        failure = ET.SubElement(
            case, "failure", type=_clean(violation.rule), message=_clean(violation.message)
        )
        failure.text = _clean(_details(violation))
    out = []
    if result.facts is not None:
        out.append(describe(result.facts))
    for warning in result.warnings:
        out.append(f"warning {warning.rule}: {warning.message}")
        if warning.hint:
            out.append(f"  fix: {warning.hint}")
    if out:
        ET.SubElement(case, "system-out").text = _clean("\n".join(out))
    return case


def _details(violation: Violation) -> str:
    lines = [f"actual: {_value(violation.actual)}", f"allowed: {_value(violation.allowed)}"]
    if violation.hint:
        lines.append(f"fix: {violation.hint}")
    return "\n".join(lines)


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def _policy_properties(policy: Policy) -> list[tuple[str, str]]:
    windows = ", ".join(f"{lo:g}-{hi:g}" for lo, hi in policy.duration_windows)
    rates = ", ".join(f"{fps:g}" for fps in policy.fps_allowed)
    return [
        ("policy", _clean(policy.name)),
        ("duration_s", windows),
        ("width_px", f"{policy.width_px[0]}-{policy.width_px[1]}"),
        ("height_px", f"{policy.height_px[0]}-{policy.height_px[1]}"),
        ("fps", f"{rates} (±{policy.fps_tolerance:g})"),
    ]


def _seconds(milliseconds: float) -> str:
    return f"{milliseconds / 1000:.3f}"


def _clean(text: str) -> str:
    # printable first: an undecodable name byte is shown as \xff, not lost as U+FFFD.
    return _NOT_XML.sub("\ufffd", printable(text))
