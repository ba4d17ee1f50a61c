"""HATEOAS ``_links`` as Mailchimp writes them, pointing at the emulator's own base URL."""

from __future__ import annotations

from typing import Any

SCHEMA = "https://us1.api.mailchimp.com/schema/3.0/"


def link(rel: str, href: str, method: str = "GET", target: str | None = None,
         schema: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"rel": rel, "href": href, "method": method}
    if target:
        out["targetSchema"] = SCHEMA + target
    if schema:
        out["schema"] = SCHEMA + schema
    return out


def collection_links(href: str, parent: str, name: str, create: bool = True) -> list[dict[str, Any]]:
    """The self/parent/create links every collection response carries.

    :param name: the schema family, e.g. ``Lists/Members``
    """
    out = [
        link("self", href, target=f"Definitions/{name}/CollectionResponse.json",
             schema=f"Paths/{name}/Collection.json"),
        link("parent", parent, target=f"Definitions/{name.rsplit('/', 1)[0]}/Response.json"),
    ]
    if create:
        out.append(link("create", href, "POST", target=f"Definitions/{name}/Response.json",
                        schema=f"Definitions/{name}/POST.json"))
    return out


def item_links(href: str, parent: str, name: str, methods: tuple[str, ...] = ("PATCH", "DELETE"),
               ) -> list[dict[str, Any]]:
    """self/parent plus update/delete links of a single resource."""
    out = [
        link("self", href, target=f"Definitions/{name}/Response.json"),
        link("parent", parent, target=f"Definitions/{name}/CollectionResponse.json",
             schema=f"Paths/{name}/Collection.json"),
    ]
    if "PATCH" in methods:
        out.append(link("update", href, "PATCH", target=f"Definitions/{name}/Response.json",
                        schema=f"Definitions/{name}/PATCH.json"))
    if "DELETE" in methods:
        out.append(link("delete", href, "DELETE"))
    return out
