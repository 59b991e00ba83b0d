"""PDF documents: the one module of the project that imports ``reportlab``.

A document is a heading and rows of (label, value), drawn on one Letter page in the PDF
standard Helvetica (WinAnsi: every French letter, «», the no-break space). It is built
with reportlab's ``invariant`` mode (no creation date, a fixed document id), so the same
rows always give the same bytes: rendering a receipt twice stores the same file.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO

from reportlab.lib.pagesizes import LETTER
from reportlab.lib.units import inch
from reportlab.pdfgen import canvas

BRAND = "Jobsite"
FONT, BOLD = "Helvetica", "Helvetica-Bold"


def pdf_table_document(*, title: str, heading: str, rows: Sequence[tuple[str, str, bool]],
                       footer: str = "") -> bytes:
    """One page: ``BRAND``, ``heading``, then each row (label left, value right, bold when
    its third item is true), then ``footer``. Returns the PDF's bytes."""
    buffer = BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=LETTER, invariant=True)
    pdf.setTitle(title)
    pdf.setAuthor(BRAND)
    pdf.setCreator(BRAND)
    pdf.setSubject(title)
    width, height = LETTER
    left, right = inch, width - inch
    y = height - inch
    pdf.setFont(BOLD, 20)
    pdf.drawString(left, y, BRAND)
    y -= 0.5 * inch
    pdf.setFont(BOLD, 14)
    pdf.drawString(left, y, heading)
    y -= 0.45 * inch
    for label, value, strong in rows:
        pdf.setFont(BOLD if strong else FONT, 11)
        pdf.drawString(left, y, label)
        pdf.drawRightString(right, y, value)
        y -= 0.3 * inch
        if y < inch:  # a receipt has a handful of rows; never more than a page
            pdf.showPage()
            y = height - inch
    if footer:
        pdf.setFont(FONT, 9)
        pdf.drawString(left, inch * 0.75, footer)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
