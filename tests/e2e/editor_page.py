"""Driving the lab editor with the mouse and keyboard, as a user does (shared by the e2e modules)."""
from __future__ import annotations

from playwright.sync_api import expect

NODE_CENTRE = """(name) => {
    const n = window.topolab.cy.getElementById(name);
    const p = n.renderedPosition();
    const r = window.topolab.cy.container().getBoundingClientRect();
    return {x: r.left + p.x, y: r.top + p.y};
}"""


def open_editor(page, lab_pk: int, *, extensions: bool = True) -> None:
    page.goto(f"/labs/{lab_pk}/")
    page.wait_for_function("window.topolabReady !== undefined")
    if extensions:
        page.wait_for_function("window.topolab.deploy && window.topolab.consoles")


def centre(page, name: str) -> dict:
    return page.evaluate(NODE_CENTRE, name)


def drop(page, kind: str, x: int, y: int) -> None:
    page.drag_and_drop(f".palette-item[data-kind={kind}]", "#canvas", target_position={"x": x, "y": y})


def wire(page, a: str, b: str) -> None:
    """Draw a link with the mouse from node a to node b (link mode must be on)."""
    start, end = centre(page, a), centre(page, b)
    links_before = page.evaluate("window.topolab.state.doc.links.length")
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move((start["x"] + end["x"]) / 2, (start["y"] + end["y"]) / 2, steps=5)
    page.mouse.move(end["x"], end["y"], steps=10)
    page.wait_for_timeout(150)  # edgehandles' hover delay
    page.mouse.up()
    page.wait_for_function("n => window.topolab.state.doc.links.length === n + 1", arg=links_before)


def select_node(page, name: str) -> None:
    point = centre(page, name)
    page.mouse.click(point["x"], point["y"])
    expect(page.locator("#panel [data-role=node-name]")).to_have_value(name)


def double_click(page, name: str) -> None:
    """Double-click a node until its inline rename opens (a loaded machine may be slow between the two clicks)."""
    rename = page.locator("#inline-rename")
    for _ in range(3):
        point = centre(page, name)
        page.mouse.dblclick(point["x"], point["y"])
        try:
            expect(rename).to_be_visible(timeout=3_000)
            return
        except AssertionError:
            page.keyboard.press("Escape")
    expect(rename).to_be_visible()


def doc(page) -> dict:
    return page.evaluate("window.topolab.state.doc")


def rect(page, selector: str) -> dict:
    return page.evaluate("(s) => { const r = document.querySelector(s).getBoundingClientRect();"
                         " return {x: r.x, y: r.y, width: r.width, height: r.height, bottom: r.bottom}; }", selector)


def saved(page) -> None:
    expect(page.locator("#save-status")).to_have_text("Saved", timeout=10_000)


def fits(page, selector: str) -> bool:
    """Whether an element's text shows whole (not cut with an ellipsis)."""
    return page.evaluate("(s) => { const e = document.querySelector(s); return e.scrollWidth <= e.clientWidth; }",
                         selector)
