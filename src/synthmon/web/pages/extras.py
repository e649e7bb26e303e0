"""RESERVED: per-target facts other work adds to the status pages.

Planned here, not built yet (issue 13 leaves them to their own issues):

- TLS certificate expiry per target host (the metric
  `synthmon_tls_cert_not_after_seconds`): a "Certificate" column on `/` and a line in
  the journey page's facts.
- Web Vitals (LCP, CLS, INP) of browser journeys: a section on the journey page.

Each function returns HTML that is already escaped, or "" while nothing is there; the
pages call them at the place the information belongs, so adding it touches only this
module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synthmon.web.pages.rows import Row


def pair_headers() -> str:
    """Extra `<th scope="col">` cells of the status table (TLS expiry goes here)."""
    return ""


def pair_cells(row: Row) -> str:
    """Extra `<td>` cells of one status-table row, matching `pair_headers`."""
    return ""


def journey_sections(row: Row) -> str:
    """Extra `<section>`s of the journey page (TLS expiry, Web Vitals)."""
    return ""
