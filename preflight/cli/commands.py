"""One function per subcommand of `preflight`: options -> library calls -> reporter -> exit code.

No policy logic lives here. Each returns the exit code and lets a PreflightError out for main() to
map (status.py); the library is imported inside each, so a command loads only what it uses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, TYPE_CHECKING

from ..errors import PreflightError, UsageError
from ..report.printable import shown
from ..status import ExitCode, exit_code_for_verdicts
from .settings import check_options, kling_lookup, open_cache, probe_limits

if TYPE_CHECKING:
    from collections import Counter

    from ..cache import ThumbnailCache
    from ..fixing.result import FixResult
    from ..policy import Policy
    from ..verdict import Result


def run_check(args: argparse.Namespace) -> int:
    from collections import Counter

    from ..batch import InOrder, default_workers, run_batch
    from ..report import REPORTERS, Reporter, Silent, report_to_stdout, summarize
    from ..sources import DEFAULT_INCLUDE, expand_sources
    from .progress import Progress, wanted

    policy = _policy(args)
    skipped: Counter[str] = Counter()
    sources = expand_sources(
        args.sources,
        recursive=args.recursive,
        include=args.include or DEFAULT_INCLUDE,
        exclude=args.exclude,
        from_file=args.from_file,
        skipped=skipped,
    )
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be 1 or more")
    if args.workers is not None and args.dask is not None:
        raise UsageError("--workers and --dask: give one (with --dask the cluster's workers probe)")
    options = check_options(args)
    kling = None
    if any(s.startswith("kling:") for s in sources):
        if args.dask is not None:
            raise UsageError("kling: sources are checked here, not on a Dask cluster")
        kling = kling_lookup(args)
    cache = open_cache(args.ledger) if not args.no_cache else None  # closed below
    # --json and --jsonl are the older spellings of --format json|jsonl (argparse keeps them apart)
    mode = args.format or ("json" if args.json else "jsonl" if args.jsonl else "text")
    progress = Progress(len(sources), sys.stderr, enabled=wanted(quiet=args.quiet, mode=mode))
    # Results go above the bar: stdout and stderr are one terminal, and a result printed where
    # the bar stands would run into it.
    out = progress.above(sys.stdout)
    if report_to_stdout(vars(args), asked=mode != "text" or args.format is not None):
        reporter: Reporter = Silent()  # stdout is the report (--csv -): no text mixed into it
    else:
        reporter = REPORTERS[mode](out, color=_use_color(args.color, sys.stdout))
    ordered = InOrder(reporter.result)

    def on_result(index: int, result: Result) -> None:
        progress.update(result.verdict)
        if reporter.in_input_order:
            ordered(index, result)
        else:
            reporter.result(result)

    try:
        if args.dask is not None:
            from ..fanout.cluster import run_on_cluster

            def on_lost(message: str) -> None:
                print(f"preflight: {message}", file=sys.stderr)

            results = run_on_cluster(
                sources,
                policy,
                options,
                address=args.dask,
                on_result=on_result,
                timeout_s=args.dask_timeout,
                on_lost=on_lost,
                cache=cache,
            )
        else:
            results = run_batch(
                sources,
                policy,
                options,
                workers=args.workers or default_workers(sources),
                on_result=on_result,
                cache=cache,
                kling=kling,
            )
        code = exit_code_for_verdicts([r.verdict for r in results])
        progress.close()  # before the summary or the --json document: no bar while they print
        summary = summarize(results, policy=policy.name, exit_code=int(code))
        if skipped:  # a folder's files that are not video: say how many and which kinds
            summary["skipped"] = {"total": skipped.total(), "kinds": dict(skipped.most_common())}
        reporter.finish(results, summary)
        # The cache stays open for the reports: --html keeps its thumbnails beside the facts.
        thumbnails = cache.thumbnails(options.backend) if cache else None
        _write_reports(args, results, policy, thumbnails)
    finally:
        progress.close()
        if cache is not None:
            cache.close()
    return code


def _write_reports(
    args: argparse.Namespace,
    results: list[Result],
    policy: Policy,
    thumbnails: ThumbnailCache | None,
) -> None:
    from ..report import WRITERS

    for name, write in WRITERS.items():
        path = getattr(args, name)  # each writer has its own option: --junit, --csv, --html
        if not path:
            continue
        try:
            write(results, path, policy=policy, thumbnails=thumbnails)
        except OSError as exc:
            raise UsageError(f"cannot write --{name} {path}: {exc.strerror or exc}") from None


def _use_color(choice: str, stream: IO[str]) -> bool:
    if choice != "auto":
        return choice == "always"
    return stream.isatty() and not os.environ.get("NO_COLOR")


def run_validate_request(args: argparse.Namespace) -> int:
    from ..session.schemas import validate_request

    body = _read_json_arg(args.body)
    problems = validate_request(body)
    if args.json:
        print(
            json.dumps(
                {
                    "valid": not problems,
                    "problems": [{"path": p.path, "message": p.message} for p in problems],
                },
                indent=2,
            )
        )
    elif problems:
        for problem in problems:
            print(shown(f"{problem.path}: {problem.message}"))  # the body's own strings
    else:
        print("valid: the body matches init-selection.request.schema.json")
    return ExitCode.USAGE if problems else ExitCode.OK


def _read_json_arg(name: str) -> object:
    from ..sources import read_text

    text = read_text(name)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{name} is not JSON: {exc}") from None
    except RecursionError:
        raise UsageError(f"{name} is nested too deeply to read") from None


def run_init(args: argparse.Namespace) -> int:
    from ..errors import VideoRejected, VideoUnreadable
    from ..report.sessions import print_init, print_init_error
    from ..session import init_session
    from ..session.client import debug_stream

    if (args.file is None) != (args.stage is None):
        raise UsageError("--file FILE and --stage s3://BUCKET/PREFIX/ go together")
    if args.file is not None and (args.video_url or args.video_id or args.task_id):
        raise UsageError("give --file with --stage, or --video-url, or --video-id with --task-id")
    if args.video_url is None and args.video_id is None and args.file is None:
        raise UsageError("give --video-url URL, or --video-id ID with --task-id ID")
    video_url, same_source, shown_source = args.video_url, None, None
    try:
        if args.file is not None:
            from ..staging import stage_file

            staged = stage_file(
                args.file,
                args.stage,
                policy=_policy(args),
                options=check_options(args),
                expires_s=args.expires,
            )
            # Each presigning gives another URL for the same bytes: the hash is the source.
            video_url, same_source = staged.url, f"sha256:{staged.sha256}"
            # The ledger and `sessions` name the object, never its presigned (live) URL.
            shown_source = staged.object_url
        result = init_session(
            same_source=same_source,
            source=shown_source,
            video_url=video_url,
            video_id=args.video_id,
            task_id=args.task_id,
            policy=_policy(args),
            options=check_options(args),
            api_base=args.api_base,
            api_key_file=args.api_key_file,
            ledger=args.ledger,
            force=args.force,
            dry_run=args.dry_run,
            debug=debug_stream(args.debug),
            notices=sys.stderr,
            task_action=args.task_action,
            probe_video_id=not args.no_probe_video_id,
        )
    except (VideoRejected, VideoUnreadable) as exc:
        from ..report.text import TextReporter

        verdict = "reject" if isinstance(exc, VideoRejected) else "error"
        if args.json:
            print_init_error(exc, exc.result, sys.stdout, as_json=True, verdict=verdict)
        else:
            TextReporter(sys.stderr).result(exc.result)
        raise
    except PreflightError as exc:
        print_init_error(exc, None, sys.stdout, as_json=args.json, verdict="pass")
        raise
    print_init(result, sys.stdout, as_json=args.json)
    return ExitCode.OK


def run_stage(args: argparse.Namespace) -> int:
    from ..errors import VideoRejected, VideoUnreadable
    from ..report.text import TextReporter
    from ..staging import parse_target, stage_file

    bucket, _prefix = parse_target(args.to)  # a bad --to is a usage error before any check
    policy = _policy(args)
    options = check_options(args)
    verdicts: list[str] = []
    for name in args.files:
        try:
            staged = stage_file(
                name, args.to, policy=policy, options=options, expires_s=args.expires
            )
        except (VideoRejected, VideoUnreadable) as exc:
            verdicts.append(exc.result.verdict)
            if args.json:  # one object per FILE, one a line; nothing uploaded for this one
                empty = {"bucket": bucket, "key": None, "url": None, "expires_at": None}
                line = {"source": name, **empty, "sha256": None, "uploaded": False}
                print(json.dumps({**line, "check": exc.result.to_dict()}))
            else:
                TextReporter(sys.stderr).result(exc.result)
                print(shown(f"preflight: {name}: {exc}"), file=sys.stderr)
            continue
        verdicts.append(staged.check.verdict)
        if args.json:
            print(json.dumps(staged.to_dict()))
        else:
            if staged.check.verdict == "pass":
                print(staged.url)  # stdout carries only URLs the API can be given
                continue
            TextReporter(sys.stderr).result(staged.check)
            said = (
                f"preflight: {name}: uploaded, but its presigned URL does not pass: no URL printed"
            )
            print(shown(said), file=sys.stderr)
    return exit_code_for_verdicts(verdicts)


def run_watch(args: argparse.Namespace) -> int:
    from ..pipeline import CheckOptions
    from ..sources import DEFAULT_INCLUDE
    from ..watch import WatchOptions, main_loop

    if args.fix and not args.sort:
        raise UsageError("--fix works with --sort: the fixed copy goes into DIR/passed/")
    options = WatchOptions(
        interval_s=args.interval,
        settle_s=args.settle,
        sort=args.sort,
        fix=args.fix,
        include=tuple(args.include or DEFAULT_INCLUDE),
        recursive=args.recursive,
    )
    from .stderr import escaped_warnings

    escaped_warnings()
    print(shown(f"watching {args.folder} (Ctrl-C stops)"), file=sys.stderr)
    from .signals import exit_code_after, noting_signals

    seen: list[int] = []  # Ctrl-C stops the loop cleanly, and the exit code still says 130
    with noting_signals(seen):
        code = main_loop(
            args.folder,
            policy=_policy(args),
            check_options=CheckOptions(backend=args.probe, limits=probe_limits(args)),
            options=options,
            out=sys.stdout,
        )
    return exit_code_after(seen, code)


def run_fix(args: argparse.Namespace) -> int:
    from ..fixing.batch import InOrder, fix_many, outputs_for
    from ..fixing.graph import DEFAULT_PRESET
    from ..fixing.report import summarize, write_json, write_json_line, write_summary, write_text
    from ..sources import DEFAULT_INCLUDE, expand_sources
    from .progress import FIX_OUTCOMES, Progress, wanted

    policy = _policy(args)
    sources = expand_sources(
        args.sources,
        include=(*DEFAULT_INCLUDE, "*.mkv", "*.webm", "*.flv", "*.ts", "*.3gp"),
        exclude=["*.fixed.mp4"],
    )
    if args.output is not None and len(sources) > 1:
        raise UsageError("-o names one output: give one SOURCE, or use --out-dir")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be 1 or more")
    if args.out_dir is not None and not os.path.isdir(args.out_dir):
        raise UsageError(f"--out-dir {args.out_dir}: not a folder")
    out = args.output if args.output is not None else args.out_dir
    outputs = outputs_for(sources, out, dry_run=args.dry_run)
    mode = "json" if args.json else "jsonl" if args.jsonl else "text"
    enabled = wanted(quiet=args.quiet, mode=mode)
    progress = Progress(len(sources), sys.stderr, enabled=enabled, outcomes=FIX_OUTCOMES)
    out = progress.above(sys.stdout)
    ordered = InOrder(lambda r: write_text(r, out))
    # The bar counts what fix did: a source that needed nothing, or only a plan, is not "fixed".
    counted = {"fixed": "fixed", "nothing_to_fix": "ok", "planned": "planned"}

    def on_result(index: int, result: FixResult) -> None:
        progress.update(counted.get(result.status, result.status))
        if mode == "jsonl":
            write_json_line(result, out)
        elif mode == "text":
            ordered(index, result)

    try:
        results = fix_many(
            list(zip(sources, outputs, strict=True)),
            policy,
            workers=args.workers or 1,
            on_result=on_result,
            dry_run=args.dry_run,
            extend=args.extend,
            force=args.force,
            preset=args.preset or DEFAULT_PRESET,
            ten_bit=args.ten_bit,
        )
    finally:
        progress.close()
    code = max((r.exit_code for r in results), default=ExitCode.OK)
    summary = summarize(results, policy=policy.name, exit_code=int(code))
    if mode == "json":
        write_json(results, summary, sys.stdout)
    elif mode == "text":
        write_summary(summary, sys.stdout)
    return code


def run_sandbox(args: argparse.Namespace) -> int:
    from ..testing.detached import start_in_background
    from ..testing.sandbox import DEMO_KEY, Sandbox, serve

    try:
        if not args.foreground:  # eval "$(preflight sandbox)" returns; kill $PREFLIGHT_SANDBOX_PID
            print("\n".join(start_in_background(args.key or DEMO_KEY, args.port)))
            return ExitCode.OK
        sandbox = Sandbox(key=args.key or DEMO_KEY, port=args.port)
    except (ValueError, OSError) as exc:  # a port out of range or taken
        raise UsageError(f"cannot start the sandbox: {exc}") from None
    serve(sandbox)  # until Ctrl-C, which ends it normally
    return ExitCode.OK


def run_policy(args: argparse.Namespace) -> int:
    from .stderr import policy_choice

    choice = policy_choice(args)
    # stderr: stdout stays the policy document, which scripts parse.
    if choice.discovered is None:  # _choice named a discovered one already
        print(shown(f"preflight: policy from {choice.origin}"), file=sys.stderr)
    print(json.dumps(choice.policy.to_dict(), indent=2))
    return ExitCode.OK


def _policy(args: argparse.Namespace) -> Policy:
    """--policy, --profile, $PREFLIGHT_POLICY or the nearest trusted .preflight.json /
    [tool.preflight]."""
    from .stderr import policy_choice

    return policy_choice(args).policy


def run_completion(args: argparse.Namespace) -> int:
    from .completion import script

    # The parser hands over its own builder (set_defaults): commands.py does not import parser.py.
    sys.stdout.write(script(args.shell, args.build_parser()))
    return ExitCode.OK
