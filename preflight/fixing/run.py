"""fix(): check -> plan -> ffmpeg into a temp file -> re-check -> rename, for one local source.

Nothing is written unless the re-check passes; a failure or interrupt removes every temp file.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import graph, measure, packets, spawn
from .deps import Facts, Failure, Policy, Result, UsageError, load_policy
from .keep import TEN_BIT_MODES, StreamInfo
from .plan import EXTEND_MODES, SERVER_SENSITIVE, Plan, Step, make_plan, needs_fix
from .recheck import check_one
from .result import FixResult, Written, surviving_steps
from .workspace import OpenedSource, Workspace

MAX_ROUNDS = 3  # remux, then what the remuxed file's facts show, then an exact cut at most
# SSIM against the source (over the frames both have) under which a re-encode is not the
# source's picture (frames lost, held or misaligned) even when it passes the check, so it is
# not called fixed. Not the 0.98, which generated clips meet: real footage measures
# down to 0.978 (a VP8 transcode, an upscaled VFR phone clip) and those are good fixes, while a
# held first frame measured 0.92-0.95.
MIN_SSIM = 0.97
# VMAF (0-100, libvmaf's default model) under which a re-encode is not the source's picture: 90
# is where viewers begin to see the difference; CRF 18/20 encodes measure 95 and up.
MIN_VMAF = 90.0


def default_output(source: str, out_dir: str | os.PathLike[str] | None = None) -> str:
    """NAME.fixed.mp4 beside the source, or in `out_dir`."""
    path = Path(source)
    folder = Path(out_dir) if out_dir is not None else path.parent
    return str(folder / f"{path.stem}.fixed.mp4")


def resolve_output(
    source: str, out: str | os.PathLike[str] | None, *, force: bool, dry_run: bool = False
) -> str:
    """Where the fixed copy goes; UsageError for a URL, the source itself, or an existing file."""
    if source.lower().startswith(("http://", "https://")) or "://" in source[:12]:
        raise UsageError(f"{source}: fix works on local files: download it first")
    target = os.fsdecode(out) if out is not None else default_output(source)
    if "\0" in target:
        raise UsageError(f"{target!r}: an output name cannot hold a NUL byte")
    if os.path.isdir(target):
        target = default_output(source, target)
    if os.path.exists(source) and os.path.exists(target) and os.path.samefile(source, target):
        raise UsageError(f"{target}: the output would overwrite the source")
    if not force and not dry_run and os.path.lexists(target):
        raise UsageError(f"{target} exists: pass --force to replace it")
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise UsageError(f"{folder}: the output folder does not exist")
    return target


def fix(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    policy: Policy | None = None,
    dry_run: bool = False,
    *,
    extend: str | None = None,
    force: bool = False,
    preset: str = graph.DEFAULT_PRESET,
    cancel: threading.Event | None = None,
    min_ssim: float = MIN_SSIM,
    min_vmaf: float = MIN_VMAF,
    ten_bit: str = "hevc",
) -> FixResult:
    """Make one local video pass `policy`, or say why it cannot; never raises for a bad source.

    A re-encode whose SSIM against the source is under `min_ssim`, or whose VMAF is under
    `min_vmaf`, is unfixable, not fixed. `ten_bit`: what a 10-bit source that is not HEVC
    becomes, "hevc" (HEVC Main 10) or "h264" (8-bit H.264).

    UsageError for what the caller asked (a URL, an output that exists without `force`, an
    unknown `extend`); spawn.FixCancelled when `cancel` is set mid-run (temp files removed).
    """
    started = time.perf_counter()
    if extend is not None and extend not in EXTEND_MODES:
        raise UsageError(f"--extend must be one of {', '.join(EXTEND_MODES)}")
    if ten_bit not in TEN_BIT_MODES:
        raise UsageError(f"--ten-bit must be one of {', '.join(TEN_BIT_MODES)}")
    policy = policy or load_policy()
    name = os.fsdecode(source)  # bytes (a name that is not UTF-8) arrive as surrogate escapes
    if "\0" in name:
        # No file can have it, and every system call would raise ValueError on it.
        shown = name.replace("\0", "\\0")
        failure = Failure("missing", f"{shown}: a file name cannot hold a NUL byte")
        return FixResult(
            shown, "error", Result(shown, "error", error=failure), reason=failure.message
        )
    target = resolve_output(name, out, force=force, dry_run=dry_run)
    job = _Job(name, target, policy, extend, force, preset, cancel, min_ssim, min_vmaf, ten_bit)
    result = _fix(job, dry_run)
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    return result


def _fix(job: _Job, dry_run: bool) -> FixResult:
    name, policy = job.source, job.policy
    before = check_one(name, policy)
    if before.verdict == "error" or before.facts is None:
        reason = before.error.message if before.error else "the source could not be read"
        return FixResult(name, "error", before, reason=reason)
    rules, warnings = _rules(before)
    if not needs_fix(rules, warnings):
        return FixResult(name, "nothing_to_fix", before, after=before)
    pixels = (before.facts.width or 0) * (before.facts.height or 0)
    if pixels > spawn.MAX_FRAME_PIXELS:
        return FixResult(
            name,
            "unfixable",
            before,
            reason=f"a {before.facts.width}×{before.facts.height} frame is larger than any real "
            f"video's ({spawn.MAX_FRAME_PIXELS:,} pixels, H.264/HEVC level 6.2): not decoded",
        )
    try:
        source = OpenedSource(name)
    except OSError as exc:
        return FixResult(name, "error", before, reason=f"cannot open it: {exc.strerror or exc}")
    with source:
        job.read_as = source.path
        try:
            track = before.facts.video_track_id
            streams = measure.read_streams(source.path, job.cancel, track_id=track)
            plan = job.plan(before.facts, rules, warnings, streams)
            if not plan.unfixable:
                plan = packets.refine(plan, source.path, policy, job.cancel)
        except spawn.FfmpegFailed as exc:
            return FixResult(name, "unfixable", before, reason=str(exc))
        if plan.unfixable:
            return FixResult(name, "unfixable", before, reason=plan.unfixable)
        if dry_run:
            return _planned(job, before, plan)
        try:
            return job.run(before, plan)
        finally:
            job.clean()


def _planned(job: _Job, before: Result, plan: Plan) -> FixResult:
    target = job.target
    stem = target[: -len(".mp4")] if target.endswith(".mp4") else target
    # Placeholders for the outputs: ffmpeg-python cannot hold a name that is not UTF-8.
    names = {job.read_as: job.source, "/output.mp4": target}
    scratch = [f"/part{n}.mp4" for n in range(1, graph.scratch_count(plan) + 1)]
    names.update({path: f"{stem}.part{n}.mp4" for n, path in enumerate(scratch, start=1)})
    try:
        passes = graph.build(plan, job.read_as, "/output.mp4", preset=job.preset, scratch=scratch)
    except spawn.FfmpegFailed as exc:
        return FixResult(job.source, "unfixable", before, reason=str(exc))
    shown = " && ".join(graph.show(p.argv, names) for p in passes)
    return FixResult(
        job.source,
        "planned",
        before,
        output=target,
        steps=list(plan.with_commands(shown).steps),
        notes=list(plan.notes),
        dropped=list(plan.dropped),
    )


@dataclass
class _Round:
    plan: Plan
    passes: list[graph.Pass]
    output: str


@dataclass
class _Job:
    source: str
    target: str
    policy: Policy
    extend: str | None
    force: bool
    preset: str
    cancel: threading.Event | None
    min_ssim: float
    min_vmaf: float
    ten_bit: str
    read_as: str = ""  # the path every read of the source goes through (OpenedSource.path)
    temps: list[str] = field(default_factory=list)
    rounds: list[_Round] = field(default_factory=list)
    space: Workspace | None = None

    def plan(
        self,
        facts: Facts,
        rules: set[str],
        warnings: set[str],
        streams: StreamInfo,
        *,
        exact_cut: bool = False,
    ) -> Plan:
        return make_plan(
            facts,
            rules,
            warnings,
            self.policy,
            streams,
            extend=self.extend,
            exact_cut=exact_cut,
            ten_bit=self.ten_bit,
            decoders=measure.decoders(),
            encoders=measure.encoders(),
        )

    def temp(self, suffix: str = ".mp4") -> str:
        """A new path in our private folder beside the target (made on first use)."""
        if self.space is None:
            self.space = Workspace(self.target)
        path = self.space.path(f"{len(self.temps) + 1}{suffix}")
        self.temps.append(path)
        return path

    def clean(self) -> None:
        if self.space is not None:
            self.space.close()

    def run(self, before: Result, plan: Plan) -> FixResult:
        assert before.facts is not None
        current = self.read_as
        after = before
        exact_cut = False
        try:
            for _ in range(MAX_ROUNDS):
                output = self.temp()
                scratch = [self.temp() for _ in range(graph.scratch_count(plan))]
                passes = graph.build(plan, current, output, preset=self.preset, scratch=scratch)
                timeout = spawn.timeout_for(
                    max(after.facts.duration or 0, plan.extend_to_s or 0) if after.facts else None
                )
                # Recorded before it runs: when ffmpeg fails, the result still lists its steps.
                self.rounds.append(_Round(plan, passes, output))
                for one in passes:
                    spawn.run(one.argv, timeout, self.cancel)
                expected = plan.expected_duration(after.facts.duration or 0) if after.facts else 0
                after = check_one(output, self.policy)
                if after.verdict == "error" or after.facts is None:
                    reason = after.error.message if after.error else "unreadable"
                    return self._unfixable(before, after, f"the output could not be read: {reason}")
                got = after.facts.duration or 0.0
                if got < expected - max(0.5, 0.05 * expected):
                    # ffmpeg can end early without an error (a stream it cannot decode midway)
                    return self._unfixable(
                        before,
                        after,
                        f"ffmpeg wrote {got:.3f} s of video where {expected:.3f} s were expected",
                    )
                rules, warnings = _rules(after)
                if after.verdict == "pass" and not warnings & SERVER_SENSITIVE:
                    break
                exact_cut = exact_cut or (
                    "duration.out_of_range" in rules and any(s.action == "cut" for s in plan.steps)
                )
                streams = measure.read_streams(
                    output, self.cancel, track_id=after.facts.video_track_id
                )
                plan = self.plan(after.facts, rules, warnings, streams, exact_cut=exact_cut)
                if not plan.unfixable:
                    plan = packets.refine(plan, output, self.policy, self.cancel)
                if plan.unfixable or not plan.steps:
                    if after.verdict == "pass":
                        break
                    return self._unfixable(before, after, plan.unfixable or _remaining(after))
                current = output
            else:
                if after.verdict != "pass":
                    return self._unfixable(
                        before,
                        after,
                        f"still rejected after {MAX_ROUNDS} rounds: " + _remaining(after),
                    )
            quality = self._quality(before, after)
            ssim = quality.ssim if quality else None
            vmaf = quality.vmaf if quality else None
            if quality is not None and (
                quality.ssim < self.min_ssim or (vmaf is not None and vmaf < self.min_vmaf)
            ):
                return self._unfixable(
                    before,
                    after,
                    "the re-encode lost the source's picture: "
                    f"{_scores(quality)} against it, under SSIM {self.min_ssim:g} "
                    f"or VMAF {self.min_vmaf:g}",
                    quality=quality,
                )
            written = self._written(self.rounds[-1].output)
            self._publish(self.rounds[-1].output)
        except spawn.FfmpegFailed as exc:
            return self._unfixable(before, None, str(exc))
        except OSError as exc:
            return self._unfixable(
                before, None, f"cannot write {self.target}: {exc.strerror or exc}"
            )
        steps, notes = self._steps()
        return FixResult(
            self.source,
            "fixed",
            before,
            output=self.target,
            after=after,
            steps=steps,
            notes=notes,
            ssim=ssim,
            vmaf=vmaf,
            written=written,
            dropped=list(self.rounds[0].plan.dropped),
        )

    def _unfixable(
        self,
        before: Result,
        after: Result | None,
        reason: str,
        *,
        quality: measure.Quality | None = None,
    ) -> FixResult:
        steps, notes = self._steps()
        return FixResult(
            self.source,
            "unfixable",
            before,
            after=after,
            steps=steps,
            notes=notes,
            reason=reason,
            ssim=quality.ssim if quality else None,
            vmaf=quality.vmaf if quality else None,
            dropped=list(self.rounds[0].plan.dropped) if self.rounds else [],
        )

    def _names(self) -> dict[str, str]:
        """Temp paths as a person reads the commands: the output name, and a name per round."""
        names = {self.read_as: self.source}
        stem = self.target[: -len(".mp4")] if self.target.endswith(".mp4") else self.target
        for index, one in enumerate(self.rounds, start=1):
            last = index == len(self.rounds)
            names[one.output] = self.target if last else f"{stem}.round{index}.mp4"
        parts = (path for path in self.temps if path not in names)
        for number, path in enumerate(parts, start=1):
            names[path] = f"{stem}.part{number}.mp4"
        return names

    def _steps(self) -> tuple[list[Step], list[str]]:
        """The steps as they are in the file (see result.surviving_steps), and every note."""
        names = self._names()
        shown = [
            (one.plan, " && ".join(graph.show(p.argv, names) for p in one.passes))
            for one in self.rounds
        ]
        steps, gone = surviving_steps(shown)
        return steps, [note for one in self.rounds for note in one.plan.notes] + gone

    def _quality(self, before: Result, after: Result) -> measure.Quality | None:
        if not any(one.plan.reencodes_video for one in self.rounds):
            return None
        assert before.facts is not None and after.facts is not None
        plans = [one.plan for one in self.rounds]
        align = measure.alignment(plans, before.facts)
        frames = after.facts.frame_count or round((after.facts.duration or 0) * 30)
        return measure.quality(
            self.rounds[-1].output,
            self.read_as,
            align,
            frames=frames,
            timeout_s=spawn.timeout_for(after.facts.duration),
            cancel=self.cancel,
        )

    def _written(self, path: str) -> Written:
        info = measure.read_streams(path, self.cancel)
        return Written(
            size_bytes=os.stat(path).st_size,
            video_codec=info.video_codec,
            profile=info.profile,
            bit_depth=info.bit_depth,
            width=info.width,
            height=info.height,
            audio_codec=info.audio_codec,
        )

    def _publish(self, path: str) -> None:
        assert self.space is not None
        self.space.publish(os.path.basename(path), force=self.force)


def _rules(result: Result) -> tuple[set[str], set[str]]:
    return {v.rule for v in result.violations}, {w.rule for w in result.warnings}


def _scores(quality: measure.Quality) -> str:
    vmaf = f", VMAF {quality.vmaf:.2f}" if quality.vmaf is not None else ""
    return f"SSIM {quality.ssim:.4f}{vmaf}"


def _remaining(result: Result) -> str:
    return "; ".join(v.message for v in result.violations) or "the output still fails the check"
