"""Command line: argument parsing for every ``autoscaler`` subcommand; each imports its module only when run."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from .config import Config, ConfigError, load_config, parse_listen, read_token


def _load(path: str, *, with_token: bool = False) -> tuple[Config, str | None] | None:
    """The configuration (and the bearer token it names), or None after printing every problem."""
    try:
        config = load_config(path)
        return config, read_token(config) if with_token else None
    except ConfigError as err:
        print(f"{err.source}: invalid configuration", file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def check_config(args: argparse.Namespace) -> int:
    loaded = _load(args.file, with_token=True)
    if loaded is None:
        return 1
    config = loaded[0]
    names = ", ".join(config.services) or "none"
    print(f"{args.file}: valid ({len(config.services)} services: {names}; dry_run={config.dry_run})")
    return 0


def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from .app import create_app
    from .dockerapi import DockerSwarm
    from .watch import SwarmCopy

    loaded = _load(args.config, with_token=True)
    if loaded is None:
        return 1
    config, token = loaded
    overrides: dict[str, object] = {}
    if args.listen:
        try:
            parse_listen(args.listen)
        except ValueError as err:
            print(f"--listen: {err}", file=sys.stderr)
            return 2
        overrides["listen"] = args.listen
    if args.dry_run:
        overrides["dry_run"] = True
    config = config.model_copy(update=overrides)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    host, port = parse_listen(config.listen)
    swarm = DockerSwarm(config.docker.host, config.docker.timeout)
    copy = None
    if config.docker.watch:
        copy = SwarmCopy(config.services, config.docker.host, timeout=config.docker.timeout,
                         tasks_interval=config.docker.watch_tasks_interval, resync=config.docker.watch_resync)
    app = create_app(config, swarm, token=token, copy=copy)
    print(
        f'{{"event": "start", "listen": "{host}:{port}", "services": {len(config.services)}, '
        f'"dry_run": {str(config.dry_run).lower()}, "auth": {str(token is not None).lower()}}}',
        flush=True,
    )
    _release_startup_memory()
    web.run_app(app, host=host, port=port, print=None, access_log=None)
    return 0


def _release_startup_memory() -> None:
    """Building the configuration's models and the app leaves freed heap that the C allocator
    keeps: hand it back to the system (about 1 MB of the idle resident size, measured in bench/).
    Nothing where there is no glibc ``malloc_trim``."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (ImportError, OSError, AttributeError):
        pass


def gate(args: argparse.Namespace) -> int:
    from .gate.scope import Scope
    from .gate.server import run_gate

    loaded = _load(args.config)
    if loaded is None:
        return 1
    try:
        host, port = parse_listen(args.listen)
    except ValueError as err:
        print(f"--listen: {err}", file=sys.stderr)
        return 2
    run_gate(Scope.from_config(loaded[0]), host, port, args.docker)
    return 0


def _operator(command: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from . import ops

        try:
            if command == "status":
                return ops.status(args.url)
            if command == "freeze":
                return ops.freeze(args.alertmanager, args.service, args.duration, args.comment)
            alerts = None
            if args.config:
                loaded = _load(args.config)
                if loaded is None:
                    return 1
                alerts = loaded[0].alertmanager.scaling_alerts
            return ops.unfreeze(args.alertmanager, args.service, alerts)
        except (ops.OperatorError, ValueError) as err:
            print(f"autoscaler {command}: {err}", file=sys.stderr)
            return 1

    return run


def backtest(args: argparse.Namespace) -> int:
    from . import backtest as bt

    loaded = _load(args.config)
    if loaded is None:
        return 1
    try:
        return bt.main(args.prometheus, args.rules, loaded[0], args.alertmanager_config, args.start, args.end,
                       args.replicas, sys.stdout)
    except (ValueError, OSError) as err:
        print(f"autoscaler backtest: {err}", file=sys.stderr)
        return 1


def doctor(args: argparse.Namespace) -> int:
    from .doctor.run import doctor as run

    return run(args.config, prometheus=args.prometheus, alertmanager=args.alertmanager, receiver=args.receiver,
               service=args.service, as_json=args.json, out=sys.stdout, err=sys.stderr)


# Defaults of the operator commands; read here so that --help imports nothing else.
DEFAULT_RECEIVER = os.environ.get("AUTOSCALER_URL", "http://127.0.0.1:8080")
DEFAULT_ALERTMANAGER = os.environ.get("ALERTMANAGER_URL", "http://127.0.0.1:9093")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoscaler", description="Alert-driven autoscaler for Docker Swarm.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the Alertmanager webhook receiver")
    p.add_argument("--config", required=True, help="YAML configuration file")
    p.add_argument("--listen", help="HOST:PORT, overrides the configuration's listen")
    p.add_argument("--dry-run", action="store_true", help="decide and report, change nothing")
    p.set_defaults(func=serve)
    p = sub.add_parser("gate", help="hold the Docker socket; let the receiver scale its services and nothing else")
    p.add_argument("--config", required=True, help="the receiver's configuration (its services are the gate's scope)")
    p.add_argument("--listen", default="0.0.0.0:2375", help="HOST:PORT (default %(default)s)")
    p.add_argument("--docker", default="unix:///var/run/docker.sock", help="the engine (default %(default)s)")
    p.set_defaults(func=gate)
    p = sub.add_parser("check-config", help="validate a configuration file")
    p.add_argument("file")
    p.set_defaults(func=check_config)

    p = sub.add_parser("status", help="a table of the receiver's services: replicas, cooldowns, last decision, freezes")
    p.add_argument("--url", default=DEFAULT_RECEIVER, help="the receiver (default $AUTOSCALER_URL or %(default)s)")
    p.set_defaults(func=_operator("status"))
    p = sub.add_parser("freeze", help="silence a service's scaling alerts in Alertmanager")
    p.add_argument("service")
    p.add_argument("--for", dest="duration", required=True, help="how long, e.g. 2h")
    p.add_argument("--comment", required=True, help="why (shown in /status and in Alertmanager)")
    p.add_argument("--alertmanager", default=DEFAULT_ALERTMANAGER, help="default $ALERTMANAGER_URL or %(default)s")
    p.set_defaults(func=_operator("freeze"))
    p = sub.add_parser("unfreeze", help="expire the silences `freeze` made for a service; name any other that holds it")
    p.add_argument("service")
    p.add_argument("--config", help="the receiver's configuration, for alertmanager.scaling_alerts "
                                    "(default: the shipped rules' alerts)")
    p.add_argument("--alertmanager", default=DEFAULT_ALERTMANAGER, help="default $ALERTMANAGER_URL or %(default)s")
    p.set_defaults(func=_operator("unfreeze"))
    p = sub.add_parser("backtest", help="replay scaling rules, Alertmanager timings and the policy over history")
    p.add_argument("--prometheus", required=True, help="Prometheus URL holding the history")
    p.add_argument("--rules", required=True, action="append",
                   help="a rule file with scaling alerts; repeat it for every file they need "
                        "(e.g. ollama-cpu.rules.yml and ollama-scaling.rules.yml: recording rules of all are inlined)")
    p.add_argument("--config", required=True, help="the receiver's configuration (bounds, steps, cooldowns)")
    p.add_argument("--alertmanager-config", required=True,
                   help="the Alertmanager configuration whose routes, timings and time intervals to replay")
    p.add_argument("--from", dest="start", required=True, help="RFC 3339 time or Unix seconds")
    p.add_argument("--to", dest="end", required=True, help="RFC 3339 time or Unix seconds")
    p.add_argument("--replicas", type=int, help="replicas at --from (default: each service's min_replicas)")
    p.set_defaults(func=backtest)
    p = sub.add_parser("doctor", help="check every link of the chain on a live deployment; exit 1 names the broken one")
    p.add_argument("--config", required=True, help="the receiver's configuration (services, token, URLs)")
    p.add_argument("--prometheus", help="Prometheus URL (default: the configuration's prometheus.url)")
    p.add_argument("--alertmanager", help="Alertmanager URL (default: the configuration's alertmanager.url)")
    p.add_argument("--receiver", help="the receiver's URL (default: http://127.0.0.1:<the configuration's listen port>)")
    p.add_argument("--service", help="check this configured service only")
    p.add_argument("--json", action="store_true", help="one JSON document for machines")
    p.set_defaults(func=doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.func
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
