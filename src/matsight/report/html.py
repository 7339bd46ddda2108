"""A small HTML report builder: headings, paragraphs, tables and matplotlib figures.

Figures are saved as PNG files (200 dpi) with an SVG beside each (``vector=False`` leaves it out) next to
``index.html``, so they can be reused in papers, and linked relatively; the folder can be zipped and shared.
"""

import html
import re
from pathlib import Path

from .._atomic import write_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #446;padding-bottom:.2em}h2{margin-top:1.6em;color:#335}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccd;padding:.25em .6em;text-align:right}th{background:#eef}
td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9em;color:#555}.note{color:#555;font-size:.9em}
"""


def _fmt(v):
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "∞" if v > 0 else "−∞"
        return f"{v:.4g}"
    try:
        import numpy as np

        if isinstance(v, np.floating):
            return _fmt(float(v))
        if isinstance(v, np.integer):
            return str(int(v))
    except ImportError:  # pragma: no cover
        pass
    return html.escape(str(v))


class Report:
    """Collect sections, then :meth:`write` ``index.html`` into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Folder for ``index.html`` and the figure PNGs (created if missing).
    title : str
        Page title.
    vector : bool, default True
        Also write each figure as SVG beside its PNG (linked under the figure), for papers.

    Examples
    --------
    >>> rep = Report(tmp_path, "Metrics")               # doctest: +SKIP
    >>> rep.table({"VF": {"phase 0": 0.58}})             # doctest: +SKIP
    >>> rep.write()                                      # doctest: +SKIP
    """

    def __init__(self, out_dir, title, *, vector=True):
        self.out_dir = Path(out_dir)
        self.title = title
        self.vector = vector
        self._parts = []
        self._n_fig = 0

    def heading(self, text, level=2):
        """Add a heading."""
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text, *, note=False):
        """Add a paragraph of plain text."""
        cls = ' class="note"' if note else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def table(self, rows, *, columns=None, caption=None):
        """Add a table.

        Parameters
        ----------
        rows : dict of dict or list of dict
            ``{row_name: {column: value}}`` or a list of records (first column = first key).
        columns : list of str, optional
            Column order; default: union of keys in order of appearance.
        caption : str, optional
        """
        if isinstance(rows, dict):
            records = [{"": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in rows.items()]
        else:
            records = list(rows)
        if columns is None:
            columns = []
            for r in records:
                columns += [k for k in r if k not in columns]
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{html.escape(caption)}</caption>")
        out.append("<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr>")
        for r in records:
            out.append("<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in columns) + "</tr>")
        out.append("</table>")
        self._parts.append("\n".join(out))

    def figure(self, fig, name=None, *, caption=None, dpi=None, vector=None):
        """Save a matplotlib figure as PNG (and SVG with ``vector``) beside the report and embed it; the
        figure is closed. What the figure carries (:func:`matsight.report.style.figure_meta`: scale bars,
        legends, violins, images; ``labelled``: the most labelled artists in one panel) goes into ``data-``
        attributes of its ``<figure>`` element, for tests.

        Returns
        -------
        Path
            The PNG path.
        """
        import matplotlib.pyplot as plt

        from .style import PAPER_DPI, figure_meta, save_figure

        self._n_fig += 1
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name or f"figure_{self._n_fig:02d}")
        vector = self.vector if vector is None else vector
        path = save_figure(fig, self.out_dir / f"{stem}.png", dpi=dpi or PAPER_DPI, vector=vector)
        # the most labelled lines/bars of one panel: a figure with 2 or more needs a legend
        labelled = max((len(ax.get_legend_handles_labels()[0]) for ax in fig.axes), default=0)
        meta = {**figure_meta(fig), "labelled": labelled}
        data = "".join(f' data-{k.replace("_", "-")}="{int(v)}"' for k, v in meta.items())
        plt.close(fig)
        cap = html.escape(caption) if caption else ""
        if vector:
            cap += f' <a href="{path.stem}.svg">SVG</a>'
        cap = f"<figcaption>{cap.strip()}</figcaption>" if cap else ""
        self._parts.append(f'<figure{data}><img src="{path.name}" alt="{html.escape(stem)}">{cap}</figure>')
        return path

    def link(self, href, text):
        """Add a relative link (e.g. to a sub-report)."""
        self._parts.append(f'<p><a href="{html.escape(str(href))}">{html.escape(text)}</a></p>')

    def write(self, name="index.html"):
        """Write the page atomically and return its path.

        Figures that an earlier page of this name showed and this one does not are removed, so a folder
        written again never mixes two runs' figures; other files are left alone.
        """
        old = self.out_dir / name
        shown = set(re.findall(r'<img src="([^"/]+\.png)"', "\n".join(self._parts)))
        stale = (
            set(re.findall(r'<img src="([^"/]+\.png)"', old.read_text(errors="replace")))
            if old.is_file()
            else set()
        )
        body = "\n".join(self._parts)
        page = (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n"
            f"<body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n"
        )
        path = write_text(old, page)
        for png in stale - shown:
            (self.out_dir / png).unlink(missing_ok=True)
            (self.out_dir / png).with_suffix(".svg").unlink(missing_ok=True)
        return path
