"""User text shown through Streamlit's markdown (``st.markdown``, captions, messages, the sidebar) as text only.

Dataset names, user names, formulas, column and file names come from uploads and other users. Streamlit renders
such strings as GitHub-flavoured markdown: ``![x](http://host/p.png)`` would make every viewer's browser fetch
an attacker's URL, ``[link](http://x)`` would render a link, and ``:red[...]`` or ``$...$`` would restyle the page.
:func:`md_escape` is the one helper every page uses for them.
"""

from __future__ import annotations

import re

# The characters with a meaning that matters in GitHub-flavoured markdown or Streamlit: links and images (``[``, ``]``,
# which also covers Streamlit's ``:color[...]``), HTML and ``<url>`` autolinks, code, emphasis and strike-through,
# headings, LaTeX ``$``, and the escape character itself. Other punctuation (``.``, ``(``, ``_`` ...) stays as it is,
# so messages read the same in the page source.
_SPECIAL = re.compile(r"([\\`*\[\]<>#$~|])")
# GitHub-flavoured markdown also turns bare ``http://``, ``www.`` and e-mail addresses into links.
_AUTOLINKS = re.compile(r"(?i)(://|www\.|@)")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def md_escape(value: object) -> str:
    """``value`` as markdown that renders to exactly its text (on one line): no image, link, HTML or style.

    Args:
        value: any user-supplied value (None gives an empty string).

    Returns:
        The text with markdown-significant characters and autolink triggers backslash-escaped, line breaks made
        spaces.
    """
    if value is None:
        return ""
    text = _SPECIAL.sub(r"\\\1", _LINE_BREAKS.sub(" ", str(value)))
    return _AUTOLINKS.sub(lambda m: "\\" + m.group(1) if m.group(1) != "www." else m.group(1)[:3] + "\\.", text)


def md_quote(value: object) -> str:
    """``md_escape`` between single quotes, for names inside a sentence (instead of ``{name!r}``)."""
    return f"'{md_escape(value)}'"


__all__ = ["md_escape", "md_quote"]
