"""The `ledger` command (contract §5).

Every command exits non-zero with a one-line reason on bad input. Building the parser, which every
command does first, imports only what declaring the options needs; each command imports what it
uses when it runs (the store, the verifier, pandas, Kafka).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias, cast
from urllib.parse import urlparse

from ledger import audit_cli
from ledger import commands as core
from ledger.aggregates.escalation import Variant
from ledger.aggregates.protocol import ProtocolInvalidError
from ledger.cli_options import shared_options
from ledger.cli_plumbing import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REJECTED,
    INCOMPLETE_MARKER,
    UsageError,
    emit,
    one_line,
    output_path,
    positive_int,
    software_version,
)
from ledger.demo_cli import demo_command
from ledger.protocol_files import bundled_protocol
from ledger.settings import Environment
from ledger.store import redacted

if TYPE_CHECKING:
    from ledger.audit.inspection import AuditSource


def main(argv: Sequence[str] | None = None) -> int:
    environment = Environment.read()
    parser = _parser(environment)
    args = parser.parse_args(argv)
    # What INCOMPLETE names: only the same command, options and all, run again clears it.
    args.command_line = shlex.join(
        ["ledger", *map(redacted, sys.argv[1:] if argv is None else argv)]
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    out = _output_folder(args)
    before = _folder_state(out)
    try:
        _refuse_password_on_command_line(args, environment)
        _refuse_a_file_as_output_folder(out)
        code = handler(args)
        _clear_incomplete(args, out)
        if getattr(args, "unsigned", False):
            print(
                f"ledger {args.command}: WARNING: no signing key (--signing-key or "
                "LEDGER_SIGNING_KEY): checkpoints were recorded unsigned; `ledger verify` says so",
                file=sys.stderr,
            )
        return code
    except BrokenPipeError:
        # The reader went away (`ledger history ... | head`): nothing more to say to anyone.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except audit_cli.NotIntactError as error:
        print(f"ledger {args.command}: {error}", file=sys.stderr)
        return EXIT_REJECTED
    except (UsageError, ValueError, LookupError, ProtocolInvalidError) as error:
        _mark_incomplete(args, out, before, error)
        print(f"ledger {args.command}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _mark_incomplete(args, out, before, "interrupted (Ctrl-C)")
        print(f"ledger {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        _mark_incomplete(args, out, before, error)
        refused = _refusal_to_write_output(error, out)
        if refused is not None:
            print(
                f"ledger {args.command}: error: --out {out} cannot be written: "
                f"{refused.strerror or refused} ({refused.filename})",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        if environment.debug:
            raise
        print(
            f"ledger {args.command}: failed: {type(error).__name__}: {one_line(error)} "
            "(LEDGER_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _output_folder(args: argparse.Namespace) -> Path | None:
    """The folder the command writes (`--out` of export, report, archive, replay and demo)."""
    out = getattr(args, "out", None)
    return out if isinstance(out, Path) else None


FolderState: TypeAlias = dict[str, tuple[int, int]] | None


def _folder_state(folder: Path | None) -> FolderState:
    """What a folder holds (each name's size and time; None: no folder), to tell afterwards
    whether the command wrote in it."""
    if folder is None or not folder.is_dir():
        return None
    try:
        with os.scandir(folder) as found:
            held = {entry.name: entry.stat(follow_symlinks=False) for entry in found}
    except OSError:
        return None
    return {name: (held[name].st_size, held[name].st_mtime_ns) for name in held}


def _refuse_a_file_as_output_folder(out: Path | None) -> None:
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; name a folder to write into")


def _mark_incomplete(
    args: argparse.Namespace, out: Path | None, before: FolderState, why: object
) -> None:
    """A command that writes a folder and stopped half-way leaves a file saying so, so a partial
    output never passes for a complete one. Only in a folder the command made or wrote in: one it
    refused (someone's store, a non-empty archive folder) keeps exactly what it held."""
    if out is not None and out.is_dir() and _folder_state(out) != before:
        with contextlib.suppress(OSError):  # a folder it cannot write in holds nothing of it
            (out / INCOMPLETE_MARKER).write_text(
                f"{_incomplete_heading(args)} stopped before finishing: {why}\n"
                "The files in this folder are partial; run the command again.\n",
                encoding="utf-8",
            )


def _clear_incomplete(args: argparse.Namespace, out: Path | None) -> None:
    """The command ran again and finished: its own mark of an earlier, stopped run goes (a
    complete folder must not say it is partial). A mark of another command, or of this one
    with other options (another format leaves the stopped run's files beside its own), stays."""
    marker = None if out is None else out / INCOMPLETE_MARKER
    if marker is None or not marker.is_file():
        return
    with marker.open(encoding="utf-8", errors="replace") as text:
        if text.readline().startswith(_incomplete_heading(args) + " "):
            marker.unlink()


def _incomplete_heading(args: argparse.Namespace) -> str:
    return f"`{args.command_line}`"


def _refusal_to_write_output(error: Exception, out: Path | None) -> OSError | None:
    """`error` when it is the output folder (or a file in it) refusing to be written: bad input
    (name a folder you can write), not a failure of the ledger; else None."""
    if out is None or not isinstance(error, PermissionError | IsADirectoryError):
        return None
    if not isinstance(error.filename, str | Path):
        return None
    written, folder = Path(error.filename).absolute(), out.absolute()
    return error if written == folder or folder in written.parents else None


def _refuse_password_on_command_line(args: argparse.Namespace, environment: Environment) -> None:
    store = getattr(args, "store", None)
    if store is None or (environment.store_from_environment and store == environment.store):
        return
    if "://" in store and urlparse(store).password is not None:
        raise UsageError(
            "a password in --store is visible to every user (ps); use PGPASSWORD, ~/.pgpass, "
            "or the whole URL in LEDGER_STORE"
        )


# --- Kafka commands (the only module that wires consumers/) -----------------------------


def _topic_source(args: argparse.Namespace) -> AuditSource:
    """`trial.ledger`, `trial.rejections` and `trial.checkpoints` as an audit source."""
    from consumers.audit import read_ledger_topics
    from consumers.cli import connection

    if args.public_key is None:
        raise UsageError("--public-key is needed to check the topics' checkpoints")
    keys = audit_cli.public_keys_of(args.public_key) or {}
    trial_id = args.trial or bundled_protocol().trial_id
    settings = connection(args.bootstrap, args.kafka_config)
    snapshot = read_ledger_topics(
        settings, trial_id, ledger_topic=args.ledger_topic, rejections_topic=args.rejections_topic
    )
    return audit_cli.source_from_topics(trial_id, f"topics at {settings.bootstrap}", snapshot, keys)


def _publish(args: argparse.Namespace) -> int:
    from consumers.cli import cmd_publish

    code, text, document = cmd_publish(
        args.file, args.bootstrap, args.submissions_topic, kafka_config=args.kafka_config
    )
    emit(args, document, text)
    return code


def _ingest(args: argparse.Namespace) -> int:
    from consumers.cli import cmd_ingest, connection, ingest_settings
    from ledger.audit.checkpoints import configured_signer

    signer = configured_signer(args.signing_key)
    args.unsigned = signer is None
    code, text, document = cmd_ingest(
        args.store, connection(args.bootstrap, args.kafka_config), ingest_settings(args), signer
    )
    emit(args, document, text)
    return code


def _broker(args: argparse.Namespace) -> int:
    from consumers.cli import cmd_broker

    code, text, document = cmd_broker(args)
    emit(args, document, text)
    return code


class _OneLineErrors(argparse.ArgumentParser):
    """Bad arguments get one line on standard error and exit 2, as every other bad input does
    (argparse's own error prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (`{self.prog} --help`)\n")


class _CommandParser(_OneLineErrors):
    """One command's parser. The Kafka options are declared by `consumers.cli`, whose import
    (the ingest service, the Kafka client's wiring, the signing key) would otherwise cost every
    command's start-up; a command that takes them declares them when it is parsed (or its help
    is shown), which is the only time argparse reads them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._undeclared: list[Callable[[argparse.ArgumentParser], None]] = []

    def declare_on_use(self, declare: Callable[[argparse.ArgumentParser], None]) -> None:
        self._undeclared.append(declare)

    def declare_all(self) -> None:
        """Declare every option left for when the command is used."""
        while self._undeclared:
            self._undeclared.pop(0)(self)

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        self.declare_all()
        return super().parse_known_args(*args, **kwargs)


def _bootstrap_options(parser: argparse.ArgumentParser) -> None:
    from consumers.cli import add_bootstrap_argument

    add_bootstrap_argument(parser)


def _topic_options(parser: argparse.ArgumentParser) -> None:
    """`ledger verify` / `replay` of the ledger's topics instead of the store."""
    _bootstrap_options(parser)
    parser.add_argument(
        "--ledger-topic", default="trial.ledger", help="with --bootstrap: the ledger topic"
    )
    parser.add_argument(
        "--rejections-topic",
        default="trial.rejections",
        help="with --bootstrap: the rejections topic",
    )


def _ingest_options(parser: argparse.ArgumentParser) -> None:
    from consumers.cli import add_ingest_arguments

    add_ingest_arguments(parser)


def _broker_options(parser: argparse.ArgumentParser) -> None:
    from consumers.cli import add_broker_arguments

    add_broker_arguments(parser)


class _VersionAction(argparse.Action):
    """`--version`: the installed version, looked up only when asked (the lookup imports
    importlib.metadata, which no other command needs)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **settings: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **settings)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(f"{parser.prog} {software_version()}")
        parser.exit()


def _parser(environment: Environment | None = None) -> argparse.ArgumentParser:
    """The `ledger` command line, its defaults from `environment` (read now when not given)."""
    environment = Environment.read() if environment is None else environment
    parser = _OneLineErrors(
        prog="ledger", description="Event-sourced ledger for the NCT05406206 dose-finding trial."
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="show program's version number and exit"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser
    )

    options = shared_options(environment)
    store, as_json, as_of, signing = options.store, options.as_json, options.as_of, options.signing

    def add(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        parents: list[argparse.ArgumentParser],
    ) -> _CommandParser:
        # typeshed wants parents of the commands' parser class; argparse takes any parser.
        shared = cast("list[_CommandParser]", parents)
        sub = commands.add_parser(name, help=help_text, description=help_text, parents=shared)
        sub.set_defaults(handler=handler)
        return sub

    init = add(
        "init",
        core.init_command,
        "open the trial with a protocol definition",
        [store, as_json, signing],
    )
    init.add_argument("--protocol", type=Path, help="protocol JSON (default: bundled NCT05406206)")
    init.add_argument(
        "--variant", choices=[v.value for v in Variant], help="override the 3+3 variant"
    )
    init.add_argument(
        "--entered-by",
        default=environment.user,
        help="who opens the trial (recorded; default: $USER)",
    )
    init.add_argument("--reason", help="why the trial is opened (recorded)")

    submit = add(
        "submit",
        core.submit_command,
        "record submissions from a .jsonl file (no Kafka)",
        [store, as_json, signing],
    )
    submit.add_argument("file", type=Path, metavar="FILE.jsonl", help="one envelope per line")

    add("cohorts", core.cohorts_command, "the cohort table", [store, as_json, as_of])

    history = add(
        "history", core.history_command, "audit trail of one subject", [store, as_json, as_of]
    )
    history.add_argument(
        "subject", metavar="SUBJECT", help="subject id (01-003) or USUBJID (NCT05406206-01-003)"
    )

    simulate = add(
        "simulate", core.simulate_command, "operating characteristics of the 3+3 rules", [as_json]
    )
    simulate.add_argument(
        "--true-dlt", required=True, metavar="P1,P2,P3", help="true DLT rate at each dose level"
    )
    simulate.add_argument("--runs", type=int, default=10_000, help="simulated trials")
    simulate.add_argument("--seed", type=int, default=1, help="random seed (same seed, same runs)")
    simulate.add_argument(
        "--variant",
        choices=[v.value for v in Variant],
        default=Variant.STRICT_SIX.value,
        help="3+3 variant",
    )

    schema = add(
        "schema",
        core.schema_command,
        "the JSON Schema (2020-12) of the submission envelope: every type and schema version",
        [],
    )
    schema.add_argument("--type", help="only this event type's envelopes")

    add(
        "export",
        core.export_command,
        "write ADSL, ADTTE, ADRS, ADAE and manifest.json",
        [store, as_json, as_of, options.cutoff, options.dataset_format, options.out_folder],
    )
    add(
        "report",
        core.report_command,
        "the statistician's report: report.html (self-contained) and km_summary.csv",
        [store, as_json, as_of, options.cutoff, options.out_folder],
    )

    verify, replay = audit_cli.add_audit_commands(add, options, _topic_source)
    for reads_topics in (verify, replay):  # verify / replay the topics instead of the store
        assert isinstance(reads_topics, _CommandParser)
        reads_topics.declare_on_use(_topic_options)

    publish = add("publish", _publish, "validate and publish submissions to Kafka", [as_json])
    publish.add_argument("file", type=Path, metavar="FILE.jsonl", help="one envelope per line")
    publish.declare_on_use(_bootstrap_options)

    ingest = add(
        "ingest",
        _ingest,
        "consume submissions, record, republish the ledger",
        [store, as_json, signing],
    )
    ingest.declare_on_use(_bootstrap_options)
    ingest.declare_on_use(_ingest_options)

    broker = add("broker", _broker, "a local Apache Kafka for development and tests", [as_json])
    broker.declare_on_use(_broker_options)

    demo = add("demo", demo_command, "run a seeded synthetic trial on the embedded store", [])
    demo.add_argument(
        "--out", type=output_path, default=Path("demo-out"),
        help="output folder (default demo-out)"
    )
    demo.add_argument("--seed", type=int, default=12, help="random seed (same seed, same trial)")
    demo.add_argument(
        "--subjects",
        type=positive_int,
        metavar="N",
        help="enlarge the expansion so that N subjects enroll in all (a big ledger)",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
