"""``python -m ember_operator.dispatch``: run the dispatcher (the default,
or ``serve``), or replay dead letters:

    python -m ember_operator.dispatch redrive <namespace>/<function>
    python -m ember_operator.dispatch redrive --trigger <namespace>/<trigger>

Redrive needs only Redis (``EMBER_REDIS_URL``, ``EMBER_REDIS_PASSWORD``):
a Trigger's streams are read from what the dispatcher wrote down, or
named with ``--stream`` and ``--dead-letter-stream``. It prints one line
per invocation moved, with the error it was dead-lettered for.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ember_operator.dispatch.settings import DispatchSettings


def _split(ref: str) -> tuple[str, str]:
    ns, sep, name = ref.partition("/")
    if not sep or not ns or not name or "/" in name:
        raise SystemExit(f"expected <namespace>/<name>, got {ref!r}")
    return ns, name


async def redrive(settings: DispatchSettings, args: argparse.Namespace) -> int:
    from ember_operator.dispatch.connect import open_redis
    from ember_operator.dispatch.redrive import (
        redrive_function,
        redrive_trigger,
        trigger_dead_letters,
    )

    redis = open_redis(settings.redis_url, settings.redis_password, timeout=10.0)
    try:
        if args.trigger:
            ns, name = _split(args.trigger)
            known = await trigger_dead_letters(redis, ns, name)
            stream = args.stream or (known[0] if known else None)
            dlq = args.dead_letter_stream or (known[1] if known else None)
            if stream is None:
                print(f"Trigger {ns}/{name} is unknown to Redis: name --stream", file=sys.stderr)
                return 2
            moved = await redrive_trigger(
                redis, ns, name, stream, dlq or f"{stream}-dlq", settings.retention_seconds
            )
            what = f"Trigger {ns}/{name} ({dlq or stream + '-dlq'})"
        else:
            ns, name = _split(args.function)
            moved = await redrive_function(redis, ns, name, settings.retention_seconds)
            what = f"Function {ns}/{name}"
    finally:
        await redis.aclose()
    for m in moved:
        print(f"moved {m.invocation_id}: {m.error}")
    print(f"{len(moved)} dead letter(s) of {what} queued again")
    return 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ember_operator.dispatch", description=__doc__)
    sub = ap.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the dispatcher (the default)")
    rd = sub.add_parser("redrive", help="replay dead letters, attempts reset")
    rd.add_argument("function", nargs="?", help="<namespace>/<function>")
    rd.add_argument("--trigger", help="<namespace>/<trigger>: a queue Trigger's dead letters")
    rd.add_argument("--stream", help="the Trigger's stream (default: as the dispatcher recorded)")
    rd.add_argument("--dead-letter-stream", help="default: as recorded, or <stream>-dlq")
    args = ap.parse_args(argv)
    try:
        settings = DispatchSettings.from_env()
    except ValueError as e:
        print(f"ember dispatcher: invalid settings: {e}", file=sys.stderr)
        raise SystemExit(2) from e
    if args.command == "redrive":
        if bool(args.function) == bool(args.trigger):
            ap.error("redrive takes <namespace>/<function> or --trigger <namespace>/<trigger>")
        raise SystemExit(asyncio.run(redrive(settings, args)))
    import uvloop

    from ember_operator.dispatch.service import serve

    raise SystemExit(uvloop.run(serve(settings)))


if __name__ == "__main__":
    main()
