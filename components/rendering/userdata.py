"""Cloud-init user data, built as data (a dict dumped as YAML), never as a YAML template.

The VM's files, the bootstrap script among them, travel as one deterministic, xz-compressed
tar archive: files that differ in a few names and numbers (one prosody config per visitor
node) cost a few dozen bytes each. cloud-init writes the archive, unpacks the bootstrap and
runs it once; the bootstrap unpacks the rest when the packages are in place.

What is sent: Hetzner takes the cloud-config text (cap 32 KiB). AWS caps raw user data at
16 KB, so there the same text is sent gzip-compressed, which cloud-init recognises and
unpacks before parsing; the cap is checked against the bytes actually sent.
"""

from __future__ import annotations

import base64
import gzip
import io
import lzma
import tarfile
import tokenize
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import yaml

from components.model.project import Cloud
from components.rendering.engine import RenderedFile

# AWS: 16 KB of raw user data, before base64 (EC2 user guide, "Work with instance user data").
# Hetzner: "This field is limited to 32KiB" (Cloud API, create server).
USER_DATA_CAPS: Final = {Cloud.aws: 16 * 1000, Cloud.hetzner: 32 * 1024}

# Where the archive and the bootstrap land on every VM.
ROOTFS_ARCHIVE: Final = "/var/lib/jitsi-xxl/rootfs.tar.xz"
BOOTSTRAP: Final = "/usr/local/sbin/jitsi-xxl-bootstrap"
READY_REPORT: Final = "/var/lib/jitsi-xxl/ready.json"

# A fixed timestamp for archive members and gzip headers: same input, same bytes.
_EPOCH: Final = 0


class UserDataTooLargeError(ValueError):
    """The user data exceeds a provider's cap."""


class CloudConfigKey(StrEnum):
    """The cloud-config modules we use."""

    write_files = "write_files"
    runcmd = "runcmd"


def tar_xz(files: Iterable[RenderedFile]) -> bytes:
    """A reproducible tar.xz of `files` (paths made relative to /, mtime 0), each with its mode
    and group: the bootstrap unpacks it with `--same-owner` once the packages made the groups."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in sorted(files, key=lambda f: f.path):
            data = f.content.encode()
            info = tarfile.TarInfo(f.path.lstrip("/"))
            info.size = len(data)
            info.mode = f.mode
            info.mtime = _EPOCH
            info.uid = info.gid = 0
            info.uname, info.gname = "root", f.group
            tar.addfile(info, io.BytesIO(data))
    # Strongest preset, but a 1 MiB dictionary: the archive is far smaller than that, and the
    # default 64 MiB dictionary of preset 9 costs hundreds of MiB of memory to compress.
    lzma_filter = {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20}
    return lzma.compress(raw.getvalue(), format=lzma.FORMAT_XZ, filters=[lzma_filter])


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=_EPOCH)


def _literal_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


class _Dumper(yaml.SafeDumper):
    """Safe YAML; multi-line strings as literal blocks, for readable diffs."""


_Dumper.add_representer(str, _literal_str)


def archive_text(data: bytes) -> str:
    """The archive as cloud-config carries it: base64 on one line. Lines of a YAML block
    would each pay the block's indentation, about 9 % of the user data; the bytes are opaque
    either way (the goldens hold the files themselves)."""
    return base64.b64encode(data).decode()


# Stands for the archive in a cloud-config skeleton (`cloud_config_skeleton`): a plain YAML
# scalar like the base64 it stands for, so that putting one in place of the other changes
# nothing else in the document.
ARCHIVE_MARKER: Final = "XXL-ARCHIVE-CONTENT"


def cloud_config(archive_path: str, files: tuple[RenderedFile, ...], command: str) -> str:
    """`#cloud-config` text: one archive of `files`, unpacked by cloud-init's `runcmd`, which
    then runs `command` (a file inside the archive)."""
    skeleton = cloud_config_skeleton(archive_path, command)
    return skeleton.replace(ARCHIVE_MARKER, archive_text(tar_xz(files)), 1)


def cloud_config_skeleton(archive_path: str, command: str) -> str:
    """The cloud-config of `cloud_config` with ARCHIVE_MARKER where the archive goes: what the
    Hetzner autoscaler completes on the signaling VM with the bridges' files."""
    doc: dict[str, Any] = {
        CloudConfigKey.write_files.value: [
            {
                "path": archive_path,
                "encoding": "b64",
                "permissions": "0600",
                "owner": "root:root",
                "content": ARCHIVE_MARKER,
            },
        ],
        CloudConfigKey.runcmd.value: [
            ["tar", "-xJf", archive_path, "-C", "/", "--no-same-owner", command.lstrip("/")],
            [command],
        ],
    }
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000)
    return "#cloud-config\n" + body


def user_data_bytes(user_data: str, cloud: Cloud) -> bytes:
    """The exact bytes sent as user data to `cloud`."""
    text = user_data.encode()
    return gzip_bytes(text) if cloud is Cloud.aws else text


def aws_user_data_base64(user_data: str) -> str:
    """What the AWS provider takes (`user_data_base64`, a launch template's `user_data`)."""
    return base64.b64encode(user_data_bytes(user_data, Cloud.aws)).decode()


def user_data_from_aws_base64(encoded: str) -> str:
    """The cloud-config text back from `aws_user_data_base64`."""
    return gzip.decompress(base64.b64decode(encoded)).decode()


def check_caps(user_data: str, clouds: Iterable[Cloud] = tuple(Cloud)) -> dict[Cloud, int]:
    """Sizes sent per cloud; raises UserDataTooLargeError, saying by how much, if one is over."""
    sizes = {cloud: len(user_data_bytes(user_data, cloud)) for cloud in clouds}
    for cloud, size in sizes.items():
        cap = USER_DATA_CAPS[cloud]
        if size > cap:
            raise UserDataTooLargeError(
                f"user data is {size} bytes, {size - cap} over the {cloud.value} cap of {cap}"
            )
    return sizes


@dataclass(frozen=True)
class VmBundle:
    """What one VM receives: every file it holds from us once booted, and the user data."""

    files: tuple[RenderedFile, ...]
    user_data: str

    def file(self, path: str) -> RenderedFile:
        return next(f for f in self.files if f.path == path)


def empty_comment_lines(source: str, marker: str) -> str:
    """`source` with its whole-line comments emptied (shebangs kept): the explanation stays
    in the repository, the AWS cap (16 KB) is spent on code. Empty lines cost next to nothing
    compressed and keep the line numbers error messages cite."""
    lines = [
        "" if line.lstrip().startswith(marker) and not line.startswith("#!") else line
        for line in source.splitlines()
    ]
    return "\n".join(lines) + "\n"


_SKIPPED: Final = frozenset({tokenize.NL, tokenize.COMMENT})


def _docstring_spans(tokens: list[tokenize.TokenInfo]) -> list[tuple[int, int, int]]:
    """(first row, last row, column) of each docstring: a plain string that is the whole
    first statement of the module or of a class or function body. Read from the tokens, not
    from `ast`: CPython 3.11's `ast.parse` can fail ("AST constructor recursion depth
    mismatch") when called deep in a Pulumi `apply`, which is where renders run."""
    spans: list[tuple[int, int, int]] = []
    expect_doc, header, after_header = True, False, False
    candidate: tokenize.TokenInfo | None = None
    for tok in tokens:
        if tok.type in _SKIPPED:
            continue
        if candidate is not None:
            if tok.type in {tokenize.NEWLINE, tokenize.ENDMARKER}:
                spans.append((candidate.start[0], candidate.end[0], candidate.start[1]))
            candidate = None
        if after_header:
            after_header = False
            if tok.type == tokenize.INDENT:
                expect_doc = True
                continue
        if expect_doc:
            expect_doc = False
            prefix = tok.string[: len(tok.string) - len(tok.string.lstrip("rRuUbBfF"))]
            if tok.type == tokenize.STRING and not set(prefix.lower()) & {"b", "f"}:
                candidate = tok
        if tok.type == tokenize.NAME and tok.string in {"def", "class"}:
            header = True
        elif tok.type == tokenize.NEWLINE and header:
            header, after_header = False, True
    return spans


def empty_python_docs(source: str) -> str:
    """Python `source` with its docstrings emptied and its comments removed (the shebang
    kept), every line where it was: the same program, and the line numbers a traceback on
    the VM cites are the repository's. The scaler VM carries the bridges' agent and the
    autoscaler within Hetzner's user data cap; the explanation stays here."""
    lines = source.splitlines()
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for tok in tokens:
        row, col = tok.start
        if tok.type == tokenize.COMMENT and not (row == 1 and tok.string.startswith("#!")):
            lines[row - 1] = lines[row - 1][:col].rstrip()
    for first_row, last_row, col in _docstring_spans(tokens):
        first, last = first_row - 1, last_row - 1
        indent = " " * col
        # a docstring stays a (blank) docstring, so no body is left empty
        lines[first : last + 1] = (
            [indent + '""']
            if first == last
            else [indent + '"""', *([""] * (last - first - 1)), '"""']
        )
    return "\n".join(lines) + "\n"


# Whole-line comment markers of the files we ship, by name: what `for_transport` empties.
_COMMENT_MARKERS: Final = (
    ((".lua",), "--"),
    ((".conf", ".service", ".pref", ".sources", "jitsi-xxl-bootstrap"), "#"),
)


def for_transport(f: RenderedFile) -> RenderedFile:
    """The file as the VM receives it: whole-line comments emptied (see empty_comment_lines),
    Python's docstrings and comments too (see empty_python_docs)."""
    if f.path.endswith(".py"):
        return RenderedFile(f.path, empty_python_docs(f.content), f.mode, f.group)
    for suffixes, marker in _COMMENT_MARKERS:
        if f.path.endswith(suffixes):
            return RenderedFile(f.path, empty_comment_lines(f.content, marker), f.mode, f.group)
    return f


def vm_bundle(
    cloud: Cloud,
    rootfs: Iterable[RenderedFile],
    render_bootstrap: Callable[[dict[str, Any]], str],
    root: str = "",
    expand: Callable[[dict[str, RenderedFile]], Iterable[RenderedFile]] = lambda _: (),
) -> VmBundle:
    """Render the bootstrap for `rootfs`, pack everything into user data and check `cloud`'s
    cap.

    `expand` gives the files the bootstrap derives on the VM from what it received (by path,
    as received); they count among the VM's files but do not travel."""
    files = sorted((for_transport(f) for f in rootfs), key=lambda f: f.path)
    extra = {"rootfs_archive": ROOTFS_ARCHIVE, "ready_report": READY_REPORT}
    bootstrap = for_transport(RenderedFile(root + BOOTSTRAP, render_bootstrap(extra), 0o755))
    sent = tuple(sorted((*files, bootstrap), key=lambda f: f.path))
    user_data = cloud_config(ROOTFS_ARCHIVE, sent, bootstrap.path)
    check_caps(user_data, (cloud,))
    derived = tuple(expand({f.path: f for f in sent}))
    return VmBundle(
        files=tuple(sorted((*sent, *derived), key=lambda f: f.path)), user_data=user_data
    )
