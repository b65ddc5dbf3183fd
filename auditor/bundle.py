"""Reading an audit bundle: every member by name, once, with bounded memory.

Refused (BundleUnreadable, exit status 2), each with its reason:
  - a file that is not a zip archive, or a member that cannot be decompressed (bad CRC,
    encrypted, unknown compression);
  - two members of the same name (tools disagree on which one they show);
  - a member name that is not part of the bundle layout (`LAYOUT`), so nothing is read that
    no check looks at;
  - a member larger than MAX_MEMBER_BYTES, or members together larger than MAX_TOTAL_BYTES
    (the report and the total are allowed more for each envelope the bundle holds, up to a
    ceiling, so that a national network's bundle is read),
    counted on the bytes actually decompressed (not the sizes the archive claims), so a zip bomb
    costs at most that much memory.
Folder entries, which an ordinary re-zip adds, are skipped when empty.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import cast

from isal import isal_zlib

from auditor.errors import Unreadable

MAX_MEMBER_BYTES = 64 * 2**20
MAX_TOTAL_BYTES = 512 * 2**20
# A network's report and bundle grow with its submissions: at 3,000 labs x four quarters
# (bench/bench_national.py) report/benchmark.json is about 130 MB and the bundle about 550 MB
# decompressed. So each envelope in the bundle allows the report and the total this much more,
# up to a hard ceiling; a bomb without envelopes still stops at the bounds above.
REPORT_BYTES_PER_ENVELOPE = 32 * 2**10
TOTAL_BYTES_PER_ENVELOPE = 128 * 2**10
MAX_REPORT_BYTES_CEILING = 1 * 2**30
MAX_TOTAL_BYTES_CEILING = 4 * 2**30
REPORT = "report/benchmark.json"
MAX_MEMBERS = 200_000
_CHUNK = 2**20

_INDEX = r"(?:0|[1-9][0-9]{0,18})"  # one spelling per leaf index
_KEYID = r"[0-9a-f]{64}"
_ROUND = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"

LAYOUT = tuple(
    re.compile(pattern)
    for pattern in (
        r"MANIFEST\.json",
        r"MANIFEST\.sig",
        r"tree_head\.envelope",
        r"checkpoint\.txt",
        r"keys/witnesses\.json",
        r"standard\.toml",
        r"report/benchmark\.json",
        r"report/index\.html",  # carried by bundles from older coordinators; never verified
        r"ledger/leaves\.json",
        rf"ledger/legacy/{_INDEX}\.envelope",
        rf"envelopes/{_INDEX}\.envelope",
        rf"receipts/{_INDEX}\.envelope",
        rf"proofs/{_INDEX}\.json",
        r"keys/coordinator\.pem",
        r"keys/sites\.json",
        rf"keys/{_KEYID}\.pem",
        rf"enrolments/{_KEYID}\.envelope",
        rf"eqa/{_ROUND}/round\.envelope",
        rf"eqa/{_ROUND}/truth\.csv",
    )
)


# A name is in the layout if one of its patterns matches it whole: one pattern of them all, matched
# once (a national bundle has 42,000 members).
_IN_LAYOUT = re.compile("|".join(f"(?:{pattern.pattern})" for pattern in LAYOUT))


class BundleUnreadable(Unreadable):
    """The bundle cannot be read at all (exit status 2)."""


def leaf_number(name: str) -> int:
    """The leaf index in a name such as envelopes/12.envelope (the layout guarantees the form)."""
    return int(name.rsplit("/", 1)[1].split(".", 1)[0])


def read(path: Path) -> dict[str, bytes]:
    """{member name: content} of the bundle at path, or BundleUnreadable saying why not."""
    with Bundle(path) as bundle:
        return {name: bundle.read(name) for name in bundle.names}


class Bundle:
    """An open bundle whose members are read one at a time, by name, each within the bounds
    (so that a verifier keeps in memory only what it still needs). Opening it checks the list of
    members: their number, no two of one name, every name part of the layout, folder entries
    empty. `read` hands each member's bytes and keeps their SHA-256 (`digests`); `unread` names
    the members not read yet."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._archive = zipfile.ZipFile(path)
        except (
            OSError,
            EOFError,
            NotImplementedError,  # a damaged header can claim a zip version nobody implements
            RuntimeError,
            ValueError,  # UnicodeDecodeError of a damaged name included
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
        ) as exc:
            raise BundleUnreadable(f"{path} is not a readable zip file: {exc}") from exc
        try:
            self._members = self._listed()
        except BaseException:
            self._archive.close()
            raise
        self.names = tuple(self._members)
        self.digests: dict[str, str] = {}
        self._total = 0

    def _listed(self) -> dict[str, zipfile.ZipInfo]:
        path, members = self.path, self._archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise BundleUnreadable(
                f"{path} has {len(members)} members, more than the {MAX_MEMBERS} a bundle may hold"
            )
        envelopes = sum(1 for info in members if info.filename.startswith("envelopes/"))
        self._report_limit = min(
            MAX_MEMBER_BYTES + REPORT_BYTES_PER_ENVELOPE * envelopes, MAX_REPORT_BYTES_CEILING
        )
        self._total_limit = min(
            MAX_TOTAL_BYTES + TOTAL_BYTES_PER_ENVELOPE * envelopes, MAX_TOTAL_BYTES_CEILING
        )
        listed: dict[str, zipfile.ZipInfo] = {}
        for info in members:
            name = info.filename
            if info.is_dir():
                if _read_member(self._archive, info, 1, 1):
                    raise BundleUnreadable(f"{path}: the folder entry {name} holds data")
                continue  # an ordinary re-zip adds folder entries
            if name in listed:
                raise BundleUnreadable(
                    f"{path} holds two members named {name}; tools disagree on which one they "
                    "show, so the bundle is refused. Ask the centre for the bundle as it made it"
                )
            if not _IN_LAYOUT.fullmatch(name):
                raise BundleUnreadable(
                    f"{path}: the member {name!r} is not part of a rarenet audit bundle "
                    "(it holds MANIFEST.json, MANIFEST.sig, tree_head.envelope, checkpoint.txt, "
                    "standard.toml, report/benchmark.json, and under envelopes/, receipts/, "
                    "proofs/, ledger/, keys/, enrolments/ and eqa/ files named by leaf index, "
                    "key id or round, such as envelopes/12.envelope)"
                )
            listed[name] = info
        return listed

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self._archive.close()

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def read(self, name: str) -> bytes:
        """The member's bytes (KeyError when the bundle has none of that name); the bundle's
        total counts every read."""
        info = self._members[name]
        limit = self._report_limit if name == REPORT else MAX_MEMBER_BYTES
        left = self._total_limit - self._total
        content = _read_member(self._archive, info, limit, left, self.path, self._total_limit)
        self._total += len(content)
        self.digests[name] = hashlib.sha256(content).hexdigest()
        return content

    def read_again(self, name: str) -> bytes:
        """A member read before (and let go), read again: its bytes as they were the first time
        (counted once in the total), or BundleUnreadable when the file changed meanwhile."""
        info = self._members[name]
        limit = self._report_limit if name == REPORT else MAX_MEMBER_BYTES
        content = _read_member(self._archive, info, limit, limit, self.path, self._total_limit)
        if hashlib.sha256(content).hexdigest() != self.digests.get(name):
            raise BundleUnreadable(
                f"{self.path}: the member {name} changed while the bundle was verified; verify "
                "a copy nothing writes to"
            )
        return content

    def unread(self) -> list[str]:
        return [name for name in self.names if name not in self.digests]


def _read_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    limit: int,
    left: int,
    path: Path | None = None,
    total_limit: int | None = None,
) -> bytes:
    """The member's bytes, stopping as soon as more than `limit` (or `left`, of the bundle's
    `total_limit`) are decompressed."""
    where = f"{path}: the member {info.filename}" if path else f"the member {info.filename}"
    quick = _read_whole(archive, info, min(limit, left) + 1)
    if quick is not None:
        _bounded(len(quick), limit, left, where, total_limit)
        return quick
    chunks: list[bytes] = []
    size = 0
    try:
        with archive.open(info) as member:
            while chunk := member.read(min(_CHUNK, limit + 1)):
                size += len(chunk)
                _bounded(size, limit, left, where, total_limit)
                chunks.append(chunk)
    except BundleUnreadable:
        raise
    except (
        OSError,
        EOFError,
        RuntimeError,
        NotImplementedError,
        ValueError,
        zipfile.BadZipFile,
        zlib.error,
    ) as exc:
        raise BundleUnreadable(f"{where} cannot be read: {exc}") from exc
    return b"".join(chunks)


def _bounded(size: int, limit: int, left: int, where: str, total_limit: int | None) -> None:
    """BundleUnreadable once `size` bytes decompressed are more than the member's `limit`, or
    than the `left` of the bundle's total."""
    if size > limit:
        raise BundleUnreadable(
            f"{where} decompresses to more than {limit} bytes; refused (a zip bomb, "
            "or not a rarenet bundle)"
        )
    if size > left:
        raise BundleUnreadable(
            f"{where} takes the bundle past {total_limit or MAX_TOTAL_BYTES} bytes"
            " decompressed; refused (a zip bomb, or not a rarenet bundle)"
        )


# A member is read whole, in one piece, when nothing about it is unusual: zipfile's reader spends
# more on each member's Python than inflating a summary takes, and a bundle holds tens of
# thousands. What zipfile would refuse or say something of is left to it (_read_whole gives None).
_WHOLE_MAX = 16 * 2**20  # bytes read or inflated at once, at most (inflating, twice that is held)
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # APPNOTE 4.3.7: 30 bytes, then name and extra
_LOCAL_SIGNATURE = b"PK\x03\x04"
_UNUSUAL_FLAGS = 0x1 | 0x20 | 0x40  # encrypted, compressed patch data, strong encryption
_INFLATE_ERROR = cast(type[Exception], isal_zlib.error)  # its stub does not say it is one


def _read_whole(archive: zipfile.ZipFile, info: zipfile.ZipInfo, most: int) -> bytes | None:
    """The member's bytes as zipfile reads them (cut at the size the directory names; its CRC-32
    checked), inflating at most `most` bytes; None when it is stored otherwise than plainly, its
    local header is not what the directory says, it is short, or its CRC-32 differs: zipfile then
    reads it, and says what is wrong."""
    if (
        info.flag_bits & _UNUSUAL_FLAGS
        or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
        or max(info.compress_size, info.file_size) > _WHOLE_MAX
        or not info.orig_filename.isascii()
        or archive.fp is None
    ):
        return None
    name = info.orig_filename.encode("ascii")
    try:
        fd = archive.fp.fileno()
        header = os.pread(fd, _LOCAL_HEADER.size + len(name), info.header_offset)
        if len(header) != _LOCAL_HEADER.size + len(name):
            return None
        fields = _LOCAL_HEADER.unpack_from(header)
        signature, name_length, extra_length = fields[0], fields[-2], fields[-1]
        if (
            signature != _LOCAL_SIGNATURE
            or name_length != len(name)
            or header[_LOCAL_HEADER.size :] != name
        ):
            return None
        start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        raw = os.pread(fd, info.compress_size, start)
        if len(raw) != info.compress_size:
            return None
        wanted = min(info.file_size, most)
        if info.compress_type == zipfile.ZIP_STORED:
            content = raw[:wanted]
        elif wanted == 0:
            content = b""
        else:
            inflating = isal_zlib.decompressobj(-15)  # ISA-L: the bytes zlib inflates, faster
            content = inflating.decompress(raw, wanted)
            if len(content) < wanted:
                content += inflating.flush()
            content = content[: info.file_size]
    except (OSError, ValueError, _INFLATE_ERROR):
        return None
    if len(content) < most and isal_zlib.crc32(content) != info.CRC:
        return None  # (at `most`, the caller refuses it for its size, as it would from zipfile)
    return content
