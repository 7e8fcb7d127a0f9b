"""The landing page's room list (``landing.render``): whatever a room's name, the page shows
it as the link's text, exactly, and gains no element, attribute or script from it."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given
from hypothesis import strategies as st

from guichet.landing import Listed, render
from guichet.room.model import RoomName

#: What RoomName admits (no C0 control character nor DEL), and more: no C1 either.
names = st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=100)


class Links(HTMLParser):
    """The start tags of a document and the text of each room link."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.links: list[str] = []
        self._in_link = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a" and ("data-testid", "room-link") in attrs:
            self._in_link = True
            self.links.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._in_link = False

    def handle_data(self, data: str) -> None:
        if self._in_link:
            self.links[-1] += data


def parsed(body: bytes) -> Links:
    parser = Links()
    parser.feed(body.decode())
    parser.close()
    return parser


@given(names)
def test_a_name_is_the_link_text_and_adds_no_markup(name: RoomName) -> None:
    plain = parsed(render((Listed("r1", "room", "open", "2025-06-01T18:00:00Z"),)).body)
    shown = parsed(render((Listed("r1", name, "open", "2025-06-01T18:00:00Z"),)).body)
    assert shown.links == [name]
    assert shown.tags == plain.tags


def test_no_room_says_so_and_keeps_the_explanation() -> None:
    body = render(()).body.decode()
    assert "No room is open to the public right now." in body
    assert "<!-- rooms -->" not in body
    assert "/rooms/<var>room-id</var>#token=<var>JWT</var>" in body
