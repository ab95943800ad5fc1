"""Which licences the sounds pack uses, and which of them may be mixed into one clip."""

from __future__ import annotations

import re
from collections.abc import Iterable

_SPDX_PATTERN = re.compile(
    r"CC0-1\.0|CC-BY-SA-\d\.\d|CC-BY-\d\.\d|GPL-\d\.\d-(?:or-later|only)|MIT"
)


def licence_spdx(license_text: str) -> str:
    """SPDX id of a manifest licence string (the pack states it in words around the id)."""
    match = _SPDX_PATTERN.search(license_text)
    if match is None:
        raise ValueError(f"no known SPDX licence id in {license_text!r}")
    return match.group(0)


def _licence_family(spdx: str) -> str:
    if spdx.startswith("GPL-"):
        return "GPL"
    if spdx.startswith("CC-BY"):
        return "CC-BY"
    return "permissive"


def licences_compatible(spdx_ids: Iterable[str]) -> bool:
    """Whether material under these licences may be mixed into one clip.

    A mix is a derivative work of every event in it. GPL material is never combined with CC BY /
    CC BY-SA 3.0 material: CC BY-SA 3.0 is not GPL-compatible and the compatibility of CC BY 3.0
    with the GPL is not established. MIT and CC0 combine with anything; GPL-2.0-or-later with
    GPL-3.0-or-later gives GPL-3.0-or-later.
    """
    families = {_licence_family(s) for s in spdx_ids}
    return not {"GPL", "CC-BY"} <= families
