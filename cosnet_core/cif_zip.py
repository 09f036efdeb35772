"""The one reader of an uploaded zip of CIF files, within the upload limits.

Every zip of CIFs the app accepts goes through :func:`read_cif_zip`: the structures of a dataset (Datasets page),
the CIFs of a prediction batch (Predict page), the structure library (Structures page, ``db.library_import``)
and :meth:`cosnet_core.sources.local_library.StructureLibrary.add_cif_zip`. It refuses, naming the member and the
reason:

* a zip larger than the upload limit, an empty or unreadable file;
* more members than ``COSNET_MAX_ZIP_MEMBERS``;
* a member whose path leaves the archive (absolute, a drive such as ``C:``, or ``..``: "zip slip");
* more unpacked bytes than the headers' sizes sum to beyond ``COSNET_MAX_ZIP_UNPACKED_MB``, and, counted on the
  bytes actually read (headers can lie: zip bombs), more than that in all or more than
  ``COSNET_MAX_ZIP_MEMBER_MB`` in one member;
* an encrypted or damaged member.

Folders, non-CIF members (a zip inside the zip is never opened), hidden files (``.name``, macOS ``._name``) and
``__MACOSX/`` entries are skipped. CIFs are not parsed here (``cosnet_core.structure_io.load_structure`` does that,
bounded). Pure: no torch, no streamlit, no database.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePosixPath

from cosnet_core.upload_limits import IngestError, IngestLimits, check_upload_size, megabytes

CIF_SUFFIXES = (".cif", ".mcif")


class CifZipError(IngestError):
    """A zip of CIFs that is refused; ``item`` is the member when one is to blame (else None).

    The message reads ``"the zip member '<member>' <reason>"`` (or the reason alone), so callers that name the
    upload too can build ``"<upload>: <member>: <reason>"`` from ``item`` and ``reason``.
    """

    def __str__(self) -> str:
        return self.reason if self.item is None else f"the zip member {self.item!r} {self.reason}"


def unsafe_member_reason(name: str) -> str | None:
    """Why a member's path would leave the archive's folder when unpacked, or None when it stays inside."""
    path = name.replace("\\", "/")
    parts = PurePosixPath(path).parts
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path) or (parts and parts[0].endswith(":")):
        return "is an absolute path (path traversal); such archives are refused"
    if any(part == ".." for part in path.split("/")):
        return "escapes the archive's folder ('..', path traversal); such archives are refused"
    return None


def member_base_name(name: str) -> str:
    """The file name of a member without its folders (``"cifs/a.cif"`` -> ``"a.cif"``)."""
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def _is_cif(info: zipfile.ZipInfo) -> bool:
    base = member_base_name(info.filename)
    return not (
        info.is_dir()
        or "__MACOSX" in info.filename
        or base.startswith(".")
        or not base.lower().endswith(CIF_SUFFIXES)
    )


def read_cif_zip(data: bytes, limits: IngestLimits | None = None) -> dict[str, bytes]:
    """Unpack the ``.cif``/``.mcif`` members of an uploaded zip, within limits.

    Args:
        data: the zip file's bytes.
        limits: compressed size, member count, per-member and total unpacked size (from the environment when
            omitted).

    Returns:
        ``{member name: bytes}`` for each CIF member, in archive order (name as stored in the zip, folders
        included; :func:`member_base_name` gives the file name).

    Raises:
        CifZipError: too large, not a zip, too many members, a member with an absolute path or ``..`` (named),
            an encrypted or damaged member (named), or too many bytes unpacked (named when one member is).
    """
    limits = IngestLimits.from_env() if limits is None else limits
    check_upload_size(data, "the zip file", limits)
    if not data:
        raise CifZipError("the zip file is empty")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as error:
        raise CifZipError(f"the file is not a valid zip archive ({error})") from error
    with archive:
        if len(members) > limits.zip_max_members:
            raise CifZipError(
                f"the zip has {len(members):,} members, more than the limit of {limits.zip_max_members:,}"
            )
        for info in members:
            reason = unsafe_member_reason(info.filename)
            if reason:
                raise CifZipError(info.filename, reason)
        cifs = [info for info in members if _is_cif(info)]
        claimed = sum(info.file_size for info in cifs)
        if claimed > limits.zip_max_unpacked_bytes:
            raise CifZipError(
                f"the zip unpacks to more than {megabytes(limits.zip_max_unpacked_bytes)}, the limit for unpacked "
                f"CIFs (its headers claim {megabytes(claimed)}; is it a zip bomb?)"
            )
        files: dict[str, bytes] = {}
        total = 0
        for info in cifs:
            name = info.filename
            if info.flag_bits & 0x1:
                raise CifZipError(name, "is encrypted; upload an archive without a password")
            if info.file_size > limits.zip_max_member_bytes:
                raise CifZipError(
                    name,
                    f"unpacks to {megabytes(info.file_size)}, more than the per-file limit "
                    f"of {megabytes(limits.zip_max_member_bytes)}",
                )
            chunks: list[bytes] = []
            size = 0
            try:
                with archive.open(info) as stream:
                    while chunk := stream.read(64 * 1024):
                        size += len(chunk)
                        total += len(chunk)
                        if size > limits.zip_max_member_bytes:
                            raise CifZipError(
                                name,
                                "unpacks to more than the per-file limit of "
                                f"{megabytes(limits.zip_max_member_bytes)}",
                            )
                        if total > limits.zip_max_unpacked_bytes:
                            raise CifZipError(
                                f"the zip unpacks to more than {megabytes(limits.zip_max_unpacked_bytes)}, the "
                                "limit for unpacked CIFs (is it a zip bomb?)"
                            )
                        chunks.append(chunk)
            except CifZipError:
                raise
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
                raise CifZipError(name, f"is damaged and cannot be unpacked ({error})") from error
            files[name] = b"".join(chunks)
        return files


__all__ = ["CIF_SUFFIXES", "CifZipError", "member_base_name", "read_cif_zip", "unsafe_member_reason"]
