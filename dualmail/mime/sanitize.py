"""HTML sanitising of JMAP ``bodyValues`` (RFC 8621 §9.1), with nh3 (Ammonia).

RFC 8621 §9.1: HTML mail is hostile content; a server that hands it to a web client
should clean it with a well-tested library, never with hand-written filters. nh3 binds
the Rust crate Ammonia, which parses with html5ever exactly as a browser does (so
obfuscated markup cannot be read one way by the filter and another by the browser)
and rebuilds the document from an allow-list.

What ``sanitize_html`` removes:

- scripts (with their content), every event-handler attribute (only listed
  attributes survive), forms and their controls, ``iframe``/``frame``/``object``/
  ``embed``/``applet``, ``<base>``, ``<meta>``, ``<link>``, comments;
- every URL whose scheme is not in ``URL_SCHEMES`` (``javascript:``, ``vbscript:``,
  ``file:`` ...); ``data:`` only survives as the ``src`` of an ``<img>`` with a
  raster ``image/*`` type (inline images; not SVG, which can hold script); ``cid:`` (RFC 2392, inline parts) is kept;
- CSS that can load or run something: a ``style`` attribute or a ``<style>`` element
  that mentions ``url(``, ``@import``, ``image-set(``, ``expression(``, ``behavior``,
  ``-moz-binding`` or holds a CSS escape (``\\``, which could spell any of those) is
  dropped whole (an element's ``style`` attribute, or the whole ``<style>`` block).

Links keep their ``href`` and get ``rel="noopener noreferrer"``. The output is a fixed
point of the cleaner (cleaned again until a clean changes nothing, at most four times), so
a browser's parse of it is the tree that was judged safe, and
``sanitize_html(sanitize_html(x)) == sanitize_html(x)`` (tested with hypothesis).

``truncate_html`` cuts a sanitised value to a UTF-8 byte budget (maxBodyValueBytes)
without ending inside a tag, a character reference or an unclosed ``<style>``.

Must not import: twisted, lmdb, or anything from dualmail outside dualmail.mime.
"""

from __future__ import annotations

import re

import nh3

from .text import html_to_text, too_deep

__all__ = ["URL_SCHEMES", "sanitize_html", "truncate_html"]

#: Schemes a link or image may keep. ``data`` is narrowed to inline images below.
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid", "data", "ftp", "sms", "xmpp", "sip",
                         "webcal", "geo", "news", "nntp", "irc", "ircs"})

# Ammonia's default allow-list plus what mail layouts use (presentational tags and
# attributes of table layouts, ``style``/``class``, ``<style>`` blocks).
_TAGS = frozenset(nh3.ALLOWED_TAGS) | {"font", "style", "tfoot", "big", "address", "section", "main"}
_GENERIC = {"style", "class", "title", "lang", "dir", "align", "valign", "width", "height", "bgcolor",
            "color"}
_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = _GENERIC
_ATTRIBUTES.setdefault("font", set()).update({"face", "size", "color"})
for _tag in ("table", "td", "th", "tr", "tbody", "thead", "tfoot"):
    _ATTRIBUTES.setdefault(_tag, set()).update({"border", "cellpadding", "cellspacing", "nowrap", "abbr"})
_ATTRIBUTES.setdefault("img", set()).update({"border", "hspace", "vspace"})
_ATTRIBUTES.setdefault("a", set()).update({"name", "target"})
# Content dropped with its element (never shown as text).
_CLEAN_CONTENT = {"script", "title", "noscript", "template", "textarea", "select", "option", "iframe",
                  "object", "noembed", "noframes", "xmp", "applet", "frameset", "svg", "math"}

# CSS that can fetch a resource or run code; a backslash can spell any of them
# (``u\72l(``), so it counts too. Comments can split a word (``ur/**/l``): stripped
# before the test.
_CSS_DANGER = re.compile(r"url\s*\(|@import|image-set\s*\(|image\s*\(|expression\s*\(|behavior|binding|"
                         r"javascript:|\\", re.I)
_CSS_COMMENT = re.compile(r"/\*.*?(\*/|$)", re.S)
# raster types only: an SVG document can carry script and links of its own
_DATA_IMAGE = re.compile(r"\s*data:image/(png|jpeg|jpg|gif|webp|bmp|avif|x-icon|vnd\.microsoft\.icon)[;,]", re.I)
_URL_ATTRS = frozenset({"href", "src", "cite", "action", "background", "poster", "longdesc"})


def _css_is_dangerous(css: str) -> bool:
    return _CSS_DANGER.search(_CSS_COMMENT.sub("", css)) is not None


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    if "<" in value or ">" in value:
        # html5ever writes "<" and ">" in attribute values as they are; without them, every
        # "<" and ">" of the output is markup (or <style> text), which the <style> pass
        # and truncate_html rely on: a value holding "<style>" could otherwise be cut
        # out of its quotes and turn later text into attributes
        return None
    if attr == "style":
        return None if _css_is_dangerous(value) else value
    if attr in _URL_ATTRS and value.lstrip()[:5].lower() == "data:":
        # RFC 8621 §9.1: data: only as an inline image
        return value if tag == "img" and attr == "src" and _DATA_IMAGE.match(value) else None
    if attr == "target":
        return "_blank"
    return value


_CLEANER = nh3.Cleaner(
    tags=set(_TAGS),
    clean_content_tags=_CLEAN_CONTENT,
    attributes=_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    strip_comments=True,
    link_rel="noopener noreferrer",
    url_schemes=set(URL_SCHEMES),
)

# In Ammonia's output a <style> element's text cannot contain "</style" (the parser
# ends the element there) and is serialised verbatim: each block is one match.
_STYLE_BLOCK = re.compile(r"<style(?:\s[^>]*)?>(.*?)</style>", re.S | re.I)


# Ammonia's output is not always what a second parse of it gives: markup that the HTML
# parser nests one way the first time can come out as a tree it nests another way
# (``<a><table></a>...<a>`` gives an ``<a>`` inside an ``<a>``, which a browser splits
# in two), and an attribute the filter refuses is removed by moving the element's last
# attribute, the link's ``rel``, into its place.  So the output is cleaned again until it
# is a fixed point: what a browser parses from it is the tree that was judged safe, and
# sanitising is idempotent.  (One more clean of every part: ~2x the time.)
_MAX_CLEANS = 4


def _drop_dangerous_style(m: re.Match[str]) -> str:
    return "" if _css_is_dangerous(m.group(1)) else m.group(0)


def sanitize_html(html: str) -> str:
    """``html`` (a whole document or a fragment) made safe to show in a web page.

    A document nested deeper than browsers build (``text.too_deep``: the HTML5 tree
    builder is quadratic there) is served as its text, in a ``<pre>``."""
    if too_deep(html):
        text = html_to_text(html).strip("\n").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return _CLEANER.clean("<pre>" + text + "</pre>")
    out = _CLEANER.clean(html)
    for _ in range(_MAX_CLEANS - 1):
        again = _CLEANER.clean(out)
        if again == out:
            break
        out = again
    if "<style" in out:
        out = _STYLE_BLOCK.sub(_drop_dangerous_style, out)
    return out


_PARTIAL_REF = re.compile(r"&#?[A-Za-z0-9]*\Z")


def truncate_html(html: str, max_bytes: int) -> tuple[str, bool]:
    """A prefix of sanitised ``html`` of at most ``max_bytes`` UTF-8 octets (RFC 8621
    §4.2 maxBodyValueBytes), and whether it was cut.

    Cut at a character boundary; then an unfinished tag (``<`` with no ``>`` after it),
    a character reference cut short and an unclosed ``<style>`` block are dropped from
    the end (§4.2: the server SHOULD NOT cut inside an HTML tag). Every byte left is a
    byte the sanitiser wrote, in the same order, so no new markup can appear.
    """
    if max_bytes <= 0 or len(html) <= max_bytes // 4:
        return html, False
    data = html.encode("utf-8")
    if len(data) <= max_bytes:
        return html, False
    cut = max_bytes
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    value = data[:cut].decode("utf-8")
    lt = value.rfind("<")
    if lt >= 0 and value.find(">", lt) < 0:
        value = value[:lt]
    value = _PARTIAL_REF.sub("", value)
    # an unclosed <style> block: the first "<style" after the last "</style>" opens it
    # (one further in is the block's own CSS text, which may hold "<style" too)
    low = value.lower()
    close = low.rfind("</style>")
    style = low.find("<style", close + 8 if close >= 0 else 0)
    if style >= 0:
        value = value[:style]
    return value, True
