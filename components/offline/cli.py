"""`xxl`: the offline command. No cloud account, no credentials, no Pulumi CLI.

    xxl render --stack stacks/Pulumi.<name>.yaml --out DIR
    xxl plan   --stack stacks/Pulumi.<name>.yaml [--format text|markdown|json]
    xxl up-local --stack stacks/Pulumi.<name>.yaml   (the signaling VM's twin, in a container)

Bad settings or arguments: the problems on stderr, exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from components.model.credentials import Credentials, TlsMaterial
from components.model.planner import Plan, plan
from components.model.project import PROJECT, Cloud
from components.model.schedule import scheduled_sizes
from components.model.settings import (
    API_TOKEN_KEY,
    ConfigError,
    StackFile,
    TlsMode,
    UsageError,
    allowed,
    load_stack_file,
)
from components.rendering.bridge_files import bridge_bundle
from components.rendering.engine import RenderError
from components.rendering.scaler_files import describe, scaler_bundle
from components.rendering.scaler_files import policy as scaler_policy
from components.rendering.signaling_files import SignalingBundle, signaling_bundle
from components.rendering.userdata import (
    USER_DATA_CAPS,
    UserDataTooLargeError,
    VmBundle,
    user_data_bytes,
)

EXIT_CONFIG: Final = 2
# A deployment refused because it would cut a running event's viewers off.
EXIT_REFUSED: Final = 3
# Written into every folder `xxl render` fills: only such a folder is rendered into again.
RENDER_MARKER: Final = ".xxl-render"
# The subfolders a render replaces inside its folder.
RENDER_SUBFOLDERS: Final = ("signaling", "jvb", "scaler", "outputs")
THROWAWAY_NOTE: Final = (
    "note: offline render: the passwords in these files are throwaway values made for this "
    "run; `pulumi up` uses generated, secret ones"
)


def _throwaway_tls(domain: str) -> TlsMaterial:
    """A self-signed pair standing in for an operator's certificate in offline renders."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ConfigError(["offline render of tls.mode provided needs the openssl command"])
    with tempfile.TemporaryDirectory() as tmp:
        crt, key = Path(tmp, "c.pem"), Path(tmp, "k.pem")
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", f"/CN={domain}",
             "-keyout", str(key), "-out", str(crt)],
            check=True, capture_output=True,
        )  # fmt: skip
        return TlsMaterial(certificate=crt.read_text(), private_key=key.read_text())


def _sizes(user_data: str, cloud: Cloud) -> dict[str, int]:
    return {
        "text_bytes": len(user_data.encode()),
        "sent_bytes": len(user_data_bytes(user_data, cloud)),
        "cap_bytes": USER_DATA_CAPS[cloud],
    }


def plan_document(stack: StackFile, the_plan: Plan, user_data: Mapping[str, str]) -> dict[str, Any]:
    """The plan as plain data (plan.json); holds no secrets. `user_data`: each VM's
    cloud-config text (`signaling`, `bridge`, and on Hetzner `scaler`)."""
    cloud = stack.settings.cloud
    event = stack.settings.event
    return {
        "stack": stack.name,
        "cloud": cloud.value,
        "domain": the_plan.domain,
        "signaling_instance_type": stack.settings.signaling_type(),
        "bridge_instance_type": stack.settings.bridge_type(),
        "audience": stack.settings.audience,
        "main_participants": the_plan.main_participants,
        "visitors": {
            "nodes": [
                {
                    "name": n.name,
                    "domain": n.domain,
                    "muc": n.muc,
                    "polls": n.polls,
                    "c2s_port": n.c2s_port,
                    "s2s_port": n.s2s_port,
                    "http_port": n.http_port,
                }
                for n in the_plan.nodes
            ],
            "planned_per_node": the_plan.visitors_per_node,
            "max_visitors_per_node": the_plan.node_soft_limit,
            "max_per_node": the_plan.max_per_node,
        },
        "bridges": {
            "participants_per_bridge": the_plan.participants_per_bridge,
            "needed": the_plan.bridges.needed,
            "min": the_plan.bridges.min,
            "desired": the_plan.bridges.desired,
            "max": the_plan.bridges.max,
            # AWS: the pool follows the event window (none without one)
            "schedule": [
                {
                    "action": a.name,
                    "at": a.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "min": a.size.min,
                    "desired": a.size.desired,
                    "max": a.size.max,
                }
                for a in scheduled_sizes(the_plan.bridges, event.window() if event else None)
                if cloud is Cloud.aws
            ],
            # Hetzner: what the autoscaler on the scaler VM does
            **(
                {"autoscaler": scaler_policy(stack.settings, the_plan)}
                if cloud is Cloud.hetzner
                else {}
            ),
        },
        "capacity": {
            "viewers": the_plan.capacity.viewers,
            "by_visitor_nodes": the_plan.capacity.by_visitor_nodes,
            "by_bridges": the_plan.capacity.by_bridges,
            "binding": the_plan.capacity.binding,
            "fits_audience": the_plan.capacity.fits,
        },
        "network": {
            "cidr": the_plan.network.cidr,
            "subnets": list(the_plan.network.subnets),
            "signaling_private_ip": the_plan.network.signaling_private_ip,
        },
        "user_data": _sizes(user_data["signaling"], cloud),
        "bridge_user_data": _sizes(user_data["bridge"], cloud),
        **(
            {"scaler_user_data": _sizes(user_data["scaler"], cloud)}
            if "scaler" in user_data
            else {}
        ),
        "warnings": list(the_plan.warnings),
    }


def plan_text(doc: dict[str, Any]) -> str:
    v, b, c, n, u = (
        doc["visitors"],
        doc["bridges"],
        doc["capacity"],
        doc["network"],
        doc["user_data"],
    )
    nodes = v["nodes"]
    lines = [
        f"jitsi-xxl plan: stack {doc['stack']} ({doc['cloud']}), https://{doc['domain']}/",
        f"  audience       {doc['audience']:,} viewers; main room {doc['main_participants']} "
        "participants",
        f"  visitor nodes  {len(nodes)} ({nodes[0]['name']}..{nodes[-1]['name']}); "
        f"{v['planned_per_node']:,} per node planned, hard cap {v['max_per_node']:,}; jicofo "
        f"opens every node after {v['max_visitors_per_node']:,} each",
        f"  bridges        {b['needed']} needed at {b['participants_per_bridge']} per bridge; "
        f"pool min {b['min']} / desired {b['desired']} / max {b['max']}",
        *([f"  pool policy    {describe(b['autoscaler'])}"] if "autoscaler" in b else []),
        *(
            [
                "  pool schedule  "
                + "; ".join(
                    f"{a['action']} at {a['at']} to min {a['min']} / desired {a['desired']}"
                    for a in b["schedule"]
                )
                + " (created at the size the window wants; past actions are not sent)"
            ]
            if b["schedule"]
            else []
        ),
        f"  capacity       {c['viewers']:,} viewers; {c['binding']} bind first "
        f"(nodes {c['by_visitor_nodes']:,}, bridges {c['by_bridges']:,})",
        f"  network        {n['cidr']}; subnets {', '.join(n['subnets'])}; "
        f"signaling {n['signaling_private_ip']}",
        f"  user data      signaling {u['sent_bytes']:,} bytes sent of {u['cap_bytes']:,} "
        f"allowed ({u['text_bytes']:,} as text); bridge {doc['bridge_user_data']['sent_bytes']:,}"
        + (
            f"; scaler {doc['scaler_user_data']['sent_bytes']:,}"
            if "scaler_user_data" in doc
            else ""
        ),
        "",
        "  node  domain           c2s    s2s    http",
    ]
    lines += [
        f"  {x['name']:<5} {x['domain']:<16} {x['c2s_port']:<6} {x['s2s_port']:<6} {x['http_port']}"
        for x in nodes
    ]
    lines += [f"warning: {w}" for w in doc["warnings"]]
    return "\n".join(lines) + "\n"


def _bundle(stack: StackFile) -> tuple[Plan, SignalingBundle, VmBundle, VmBundle | None]:
    the_plan = plan(stack.settings)
    tls = (
        _throwaway_tls(stack.settings.domain)
        if stack.settings.tls.mode is TlsMode.provided
        else None
    )
    creds = Credentials.throwaway()
    # Hetzner's scaler VM, without an API token: offline renders act on no project
    scaler = (
        scaler_bundle(stack.settings, the_plan, creds)
        if stack.settings.cloud is Cloud.hetzner
        else None
    )
    return (
        the_plan,
        signaling_bundle(stack.settings, the_plan, creds, tls),
        bridge_bundle(stack.settings, the_plan, creds),
        scaler,
    )


def _write(path: Path, content: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    path.chmod(mode)


def check_out(out: Path) -> None:
    """Refuse an `--out` that xxl may not fill: a file, a folder that cannot be written, or
    a folder with files that an earlier render did not put there (no marker)."""
    if out.exists() and not out.is_dir():
        raise UsageError([f"--out {out}: not a folder; allowed: a new or empty folder"])
    if out.is_dir() and any(out.iterdir()) and not (out / RENDER_MARKER).is_file():
        raise UsageError(
            [
                f"--out {out}: not empty and not made by `xxl render` (no {RENDER_MARKER} "
                "in it), so its files are not ours to replace; allowed: a new or empty "
                "folder, or one xxl rendered into before"
            ]
        )
    # the folder, or the nearest folder above it that exists, must take a new entry
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError([f"--out {out}: {existing} is not a folder; allowed: a folder path"])
    try:
        tempfile.TemporaryDirectory(dir=existing).cleanup()
    except OSError as exc:
        raise UsageError(
            [f"--out {out}: cannot write in {existing} ({exc.strerror}); allowed: a "
             "folder you may write to"]
        ) from None  # fmt: skip


def cmd_render(stack_path: Path, out: Path) -> int:
    stack = load_stack_file(stack_path)
    check_out(out)
    the_plan, bundle, bridge, scaler = _bundle(stack)
    texts = {"signaling": bundle.user_data, "bridge": bridge.user_data}
    doc = plan_document(stack, the_plan, texts | ({"scaler": scaler.user_data} if scaler else {}))
    # Everything is rendered before anything is written; only our own subfolders are replaced.
    try:
        _write(out / RENDER_MARKER, "written by `xxl render`; it may render here again\n")
        _write_render(out, stack, bundle, {"jvb": bridge, "scaler": scaler}, doc)
    except OSError as exc:
        raise UsageError([f"--out {out}: cannot write ({exc})"]) from None
    print(THROWAWAY_NOTE, file=sys.stderr)
    scaler_note = f" and {len(scaler.files)} scaler VM" if scaler else ""
    print(
        f"rendered {len(bundle.files)} signaling, {len(bridge.files)} bridge{scaler_note} "
        f"files for stack {stack.name} into {out}"
    )
    return 0


def _write_render(
    out: Path,
    stack: StackFile,
    bundle: SignalingBundle,
    others: Mapping[str, VmBundle | None],
    doc: dict[str, Any],
) -> None:
    for sub in RENDER_SUBFOLDERS:
        shutil.rmtree(out / sub, ignore_errors=True)
    vms = {"signaling": bundle.vm, **{k: v for k, v in others.items() if v is not None}}
    for sub, vm in vms.items():
        _write(out / sub / "cloud-init.yaml", vm.user_data)
        if stack.settings.cloud is Cloud.aws:
            sent = out / sub / "cloud-init.yaml.gz"
            sent.write_bytes(user_data_bytes(vm.user_data, stack.settings.cloud))
        for f in vm.files:
            _write(out / sub / "rootfs" / f.path.lstrip("/"), f.content, f.mode)
    _write(out / "outputs" / "s2s.cfg.lua", bundle.s2s_config)
    _write(out / "outputs" / "jicofo-visitors.conf", bundle.jicofo_visitors_config, 0o600)
    _write(out / "plan.json", json.dumps(doc, indent=2) + "\n")


@contextlib.contextmanager
def _program_reads(stack_path: Path) -> Iterator[None]:
    """Make the program check the stack file being planned, wherever it is.

    Under `pulumi up` the program checks `stacks/Pulumi.<stack>.yaml` beside the config the
    CLI hands it; offline, both come from `--stack`, so one file is the only source even when
    a file of the same name in `stacks/` says otherwise.
    """
    from components.cloud import stack_config  # noqa: PLC0415 - imports pulumi; render needs none

    saved = stack_config.STACKS_DIR
    stack_config.STACKS_DIR = stack_path.resolve().parent
    try:
        yield
    finally:
        stack_config.STACKS_DIR = saved


def cmd_plan(stack_path: Path, fmt: str) -> int:
    stack = load_stack_file(stack_path)
    # The real program, under Pulumi's mocks: what `pulumi up` would register and export.
    from components.offline import plan_report  # noqa: PLC0415 - imports pulumi; render needs none
    from components.offline.mocks import run_program, stack_config  # noqa: PLC0415

    stand_ins = {}
    if stack.settings.tls.mode is TlsMode.provided:
        tls = _throwaway_tls(stack.settings.domain)
        stand_ins = {"tls_certificate": tls.certificate, "tls_private_key": tls.private_key}
    with _program_reads(stack_path):
        run = run_program(stack_config(stack.document, stand_ins), stack.name)
    texts = plan_report.user_data(run)
    the_plan = plan(stack.settings)
    if "bridge" not in texts:
        # Hetzner: the autoscaler packs the bridges' render on the scaler VM; its size is this
        texts["bridge"] = bridge_bundle(stack.settings, the_plan, Credentials.throwaway()).user_data
    topology = plan_document(stack, the_plan, texts)
    doc = plan_report.document(topology, run)
    if fmt == "json":
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    elif fmt == "markdown":
        sys.stdout.write(plan_report.markdown(doc))
    else:
        text = plan_text(topology) + "\n" + plan_report.resources_text(doc)
        sys.stdout.write(text + "\n" + plan_report.outputs_text(doc))
    return 0


def cmd_up_local(stack_path: Path, https_port: int) -> int:
    stack = load_stack_file(stack_path)
    from components.twin import rig  # noqa: PLC0415 - only this command boots containers

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        print(f"booting the twin of {stack.name}'s signaling VM (first run builds the image)")
        with rig.running(stack.settings, https_port=https_port) as twin:
            sys.stdout.write(rig.how_to_connect(twin))
            sys.stdout.flush()
            stop.wait()
            print("stopping: shutting the container down", flush=True)
    except rig.TwinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("stopped; no container, mount or network namespace left", flush=True)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from components.offline import host_tokens  # noqa: PLC0415

    stack = load_stack_file(args.stack)
    secret_file: Path | None = args.secret_file
    print(
        host_tokens.host_token_link(
            stack.settings,
            name=args.name,
            room=args.room,
            hours=args.hours,
            moderator=args.moderator,
            secret=(
                (lambda: host_tokens.read_secret_file(secret_file))
                if secret_file
                else (lambda: host_tokens.secret_from_stack(stack.name))
            ),
        )
    )
    return 0


def created_notes(stack: StackFile, *, with_email: bool) -> list[str]:
    """What `xxl event create` reminds of: the certificate, and on Hetzner the API token."""
    notes = (
        []
        if with_email
        else ["no --email, so a self-signed certificate; add --email for Let's Encrypt"]
    )
    if stack.settings.cloud is Cloud.hetzner:
        notes.append(
            "the bridges' autoscaler needs a read and write API token of this event's own "
            f"Hetzner project: `pulumi config set --secret --stack {stack.name} "
            f"{PROJECT}:{API_TOKEN_KEY} <token>` before `xxl event up`"
        )
    return notes


def cmd_event(args: argparse.Namespace) -> int:
    from components.offline import events  # noqa: PLC0415

    try:
        if args.action == "create":
            # ASCII digits only: str.isdigit and int() also take other scripts' digits
            if not re.fullmatch(r"[0-9]+", args.audience):
                raise UsageError(
                    [f"--audience {args.audience!r} is not allowed; allowed: "
                     f"{allowed(('audience',))}, in ASCII digits"]
                )  # fmt: skip
            audience = int(args.audience)
            config = events.event_config(
                cloud=args.cloud, audience=audience, domain=args.domain, start=args.start,
                end=args.end, email=args.email, region=args.region,
            )  # fmt: skip
            stack = events.create(args.name, config)
            print(f"wrote stacks/Pulumi.{stack.name}.yaml")
            for note in created_notes(stack, with_email=bool(args.email)):
                print(f"note: {note}")
            if shutil.which("pulumi"):
                events.init_stack(args.name)
                print(f"created Pulumi stack {stack.name}; deploy with `xxl event up {args.name}`")
            else:
                print("note: the Pulumi CLI is not installed; the stack is made at `xxl event up`")
            return 0
        if args.action == "list":
            found, problems = events.list_events()
            columns = ("event", "cloud", "audience", "start (UTC)", "end (UTC)", "phase")
            print("{:<20} {:<8} {:>8}  {:<17} {:<17} {}".format(*columns))
            for e in found:
                start = e.start.strftime("%Y-%m-%d %H:%M") if e.start else "-"
                end = e.end.strftime("%Y-%m-%d %H:%M") if e.end else "-"
                print(f"{e.name:<20} {e.cloud:<8} {e.audience:>8}  {start:<17} {end:<17} {e.phase}")
            for line in problems:
                print(f"error: {line}", file=sys.stderr)
            return EXIT_CONFIG if problems else 0
        if args.action == "up":
            try:
                outputs = events.up(args.name, allow_disruption=args.allow_disruption)
            except events.DisruptionRefusedError as exc:
                print(
                    f"error: event {args.name} is running; this deployment would cut viewers off:",
                    file=sys.stderr,
                )
                for line in exc.lines:
                    print(f"  {line}", file=sys.stderr)
                print(
                    "nothing was changed; `--allow-disruption` deploys anyway (see README, "
                    '"Changing a running event")',
                    file=sys.stderr,
                )
                return EXIT_REFUSED
            cost = outputs.get("estimated_cost_per_hour", {})
            print(f"url: {outputs.get('url')}")
            print(f"capacity: {outputs.get('capacity')}")
            print(f"cost: about {cost.get('total')} {cost.get('currency')} per hour")
            return 0
        events.down(args.name)
    except events.PulumiMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"event {args.name} destroyed; its stack and stack file are removed")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xxl", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="render every file of a stack into a folder")
    r.add_argument("--stack", type=Path, required=True, help="stacks/Pulumi.<name>.yaml")
    r.add_argument("--out", type=Path, required=True, help="output folder")
    pl = sub.add_parser("plan", help="print the topology, capacity and sizes of a stack")
    pl.add_argument("--stack", type=Path, required=True, help="stacks/Pulumi.<name>.yaml")
    pl.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    ev = sub.add_parser("event", help="per-event stacks: create, up, down, list")
    ev_sub = ev.add_subparsers(dest="action", required=True)
    create = ev_sub.add_parser("create", help="write stacks/Pulumi.event-NAME.yaml")
    create.add_argument("name")
    create.add_argument("--cloud", choices=("aws", "hetzner"), required=True)
    create.add_argument("--audience", required=True, help="expected concurrent viewers")
    create.add_argument("--domain", required=True)
    create.add_argument("--start", help="ISO 8601 with a zone, e.g. 2026-12-03T14:00:00Z")
    create.add_argument("--end", help="ISO 8601 with a zone")
    create.add_argument("--email", help="ACME e-mail: Let's Encrypt instead of self-signed")
    create.add_argument("--region", help="AWS region (default eu-central-1)")
    ev_up = ev_sub.add_parser("up", help="preview, then deploy the event's stack (Pulumi CLI)")
    ev_up.add_argument("name")
    ev_up.add_argument(
        "--allow-disruption",
        action="store_true",
        help="deploy even if, during the event, it replaces the signaling VM or rolls bridges",
    )
    ev_sub.add_parser("down", help="destroy the event's stack (needs the Pulumi CLI)").add_argument(
        "name"
    )
    ev_sub.add_parser("list", help="every event stack, its window and whether it is over")
    tk = sub.add_parser("token", help="print a host's link (a signed token) for a jwt stack")
    tk.add_argument("--stack", type=Path, required=True, help="stacks/Pulumi.<name>.yaml")
    tk.add_argument("--name", required=True, help="the host's display name")
    tk.add_argument("--moderator", action="store_true", help="the host moderates the room")
    tk.add_argument("--room", default="*", help="the room it opens (default: any room)")
    tk.add_argument("--hours", type=float, default=12.0, help="validity in hours (default 12)")
    tk.add_argument(
        "--secret-file", type=Path, help="the app secret offline, instead of the deployed stack's"
    )
    up = sub.add_parser(
        "up-local", help="boot the signaling VM's twin (a Debian 13 container) until Ctrl-C"
    )
    up.add_argument("--stack", type=Path, required=True, help="stacks/Pulumi.<name>.yaml")
    up.add_argument(
        "--https-port", type=int, default=0, help="nginx on 127.0.0.1 (default: a free port)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        commands: dict[str, Callable[[], int]] = {
            "render": lambda: cmd_render(args.stack, args.out),
            "up-local": lambda: cmd_up_local(args.stack, args.https_port),
            "event": lambda: cmd_event(args),
            "token": lambda: cmd_token(args),
            "plan": lambda: cmd_plan(args.stack, args.format),
        }
        return commands[args.command]()
    except ConfigError as exc:
        if isinstance(exc, UsageError):  # each line names its argument
            lines = [f"error: {line}" for line in exc.problems]
        else:
            where = getattr(args, "stack", None) or f"event {getattr(args, 'name', '')}".strip()
            lines = [f"error: invalid stack settings in {where}:"]
            lines += [f"  {line}" for line in exc.problems]
        print("\n".join(lines), file=sys.stderr)
        return EXIT_CONFIG
    except (UserDataTooLargeError, RenderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    raise SystemExit(main())
