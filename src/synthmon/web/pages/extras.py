"""Per-target facts beside the pair's own state: the TLS certificates its HTTPS hosts
presented (expiry, issuer, names), on `/` as a column and on the journey page as a table.

The bands are those of the ready rule `SyntheticTlsCertificateExpiring`
(deploy/prometheus/rules.yml): "expiring" under 21 days (warning), "expires soon" under
7 (critical), "expired" after; each shown as a word, never by colour alone. Public pages
show none of it (host names and issuers describe the target's insides).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from synthmon.web.pages.html import esc, stamp

if TYPE_CHECKING:
    from synthmon.model import TlsChain
    from synthmon.web.pages.rows import Row

DAY = 86_400.0
WARN_DAYS, CRIT_DAYS = 21, 7


def cert_band(not_after: float, now: float) -> tuple[str, str]:
    """(css class, words) for a certificate expiring at `not_after`."""
    days = (not_after - now) / DAY
    if days < 0:
        return "s-failing", f"expired {int(-days)} d ago"
    left = f"{int(days)} d left"
    if days < CRIT_DAYS:
        return "s-failing", f"expires soon: {left}"
    if days < WARN_DAYS:
        return "s-degraded", f"expiring: {left}"
    return "s-passing", f"valid: {left}"


def _earliest(certs: tuple[TlsChain, ...]) -> TlsChain:
    return min(certs, key=lambda c: c.earliest_not_after)


def shows_certificates(rows: Sequence[Row]) -> bool:
    """Whether `/` has a Certificate column: some pair reached an HTTPS host (None on
    public pages)."""
    return any(r.certs for r in rows)


def pair_headers() -> str:
    """Extra `<th scope="col">` cells of the status table (when `shows_certificates`)."""
    return '<th scope="col">Certificate</th>'


def pair_cells(row: Row, now: float) -> str:
    """Extra `<td>` cells of one status-table row, matching `pair_headers`: the first
    certificate of any of the pair's hosts to expire (leaf or chain)."""
    if not row.certs:
        return '<td data-label="Certificate">—</td>'
    c = _earliest(row.certs)
    cls, words = cert_band(c.earliest_not_after, now)
    title = f"{c.host}: {c.earliest_subject}, until {stamp(c.earliest_not_after)}"
    return (
        f'<td data-label="Certificate"><span class="{cls}" title="{esc(title)}">'
        f"{esc(words)}</span></td>"
    )


def journey_sections(row: Row, now: float) -> str:
    """Extra `<section>`s of the journey page: one row per HTTPS host the pair reached."""
    if not row.certs:
        return ""
    rows = []
    for c in row.certs:
        leaf_cls, leaf = cert_band(c.leaf_not_after, now)
        first_cls, first = cert_band(c.earliest_not_after, now)
        chain = "" if c.chain_complete else " (only the leaf could be read)"
        more = f" and {len(c.sans) - 10} more" if len(c.sans) > 10 else ""
        sans = ", ".join(c.sans[:10]) + more
        rows.append(
            f'<tr><th scope="row" data-label="Host">{esc(c.host)}</th>'
            f'<td data-label="Leaf expires">{stamp(c.leaf_not_after)} '
            f'<span class="{leaf_cls}">{esc(leaf)}</span></td>'
            f'<td data-label="First in chain to expire">{stamp(c.earliest_not_after)} '
            f'<span class="{first_cls}">{esc(first)}</span><br>'
            f'<span class="hint">{esc(c.earliest_subject)}</span></td>'
            f'<td data-label="Issuer">{esc(c.issuer)}</td>'
            f'<td data-label="Names">{esc(sans)}</td>'
            f'<td data-label="Chain">{c.chain_length} certificates{esc(chain)}</td></tr>'
        )
    return (
        '<section aria-labelledby="tls-h"><h2 id="tls-h">TLS certificates</h2>'
        '<table class="certs"><caption>As presented at the last runs</caption><thead><tr>'
        '<th scope="col">Host</th><th scope="col">Leaf expires</th>'
        '<th scope="col">First in chain to expire</th><th scope="col">Issuer</th>'
        '<th scope="col">Names</th><th scope="col">Chain</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )
