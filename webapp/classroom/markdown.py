"""Markdown instructions rendered to HTML that cannot carry script: raw HTML is escaped, unsafe URLs dropped."""
from __future__ import annotations

import re
import xml.etree.ElementTree as etree

import markdown as md
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

SAFE_URL = re.compile(r"^(https?:|mailto:|/|#|\./|\.\./|[^:/?#]*($|[/?#]))", re.IGNORECASE)
URL_ATTRIBUTES = ("href", "src")


class _DropUnsafeUrls(Treeprocessor):
    """javascript:, data:, vbscript: ... links and images lose their URL (the text stays)."""

    def run(self, root: etree.Element) -> None:
        for element in root.iter():
            for attribute in URL_ATTRIBUTES:
                value = element.get(attribute)
                if value is not None and not SAFE_URL.match("".join(value.split())):
                    del element.attrib[attribute]


class _SafeMode(Extension):
    def extendMarkdown(self, md_: md.Markdown) -> None:
        # Without these two, raw HTML is not passed through but escaped like any other text.
        md_.preprocessors.deregister("html_block")
        md_.inlinePatterns.deregister("html")
        md_.treeprocessors.register(_DropUnsafeUrls(md_), "drop_unsafe_urls", 0)


def render_markdown(text: str) -> str:
    """HTML for `text`, safe to insert into a page as it is."""
    return md.markdown(text or "", extensions=["fenced_code", "tables", "sane_lists", _SafeMode()],
                       output_format="html")
